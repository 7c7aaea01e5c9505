package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// The bash and zsh scripts ask vmfs itself for the candidates
// (--generate-bash-completion, which the command definitions answer), so
// they never fall out of step with the commands and flags. An empty
// answer falls back to file names: most arguments are paths.
const bashCompletion = `# bash completion for vmfs: source <(vmfs completion bash)
_vmfs_complete() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    local -a args=("${COMP_WORDS[@]:1:COMP_CWORD-1}")
    if [[ $cur == -* ]]; then
        args+=("$cur")
    fi
    local IFS=$'\n'
    COMPREPLY=($(compgen -W "$("${COMP_WORDS[0]}" "${args[@]}" --generate-bash-completion 2>/dev/null)" -- "$cur"))
    if [[ ${#COMPREPLY[@]} -eq 0 ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}
complete -o filenames -F _vmfs_complete vmfs
`

const zshCompletion = `#compdef vmfs
# zsh completion for vmfs: source <(vmfs completion zsh)
_vmfs() {
    local cur=${words[CURRENT]}
    local -a args candidates
    args=(${words[2,CURRENT-1]})
    [[ $cur == -* ]] && args+=($cur)
    candidates=(${(f)"$(${words[1]} $args --generate-bash-completion 2>/dev/null)"})
    if (( ${#candidates} )); then
        compadd -a candidates
    else
        _files
    fi
}
if (( $+functions[compdef] )); then
    compdef _vmfs vmfs
fi
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print the shell completion script for bash, zsh or fish",
		ArgsUsage: "SHELL",
		Action: func(c *cli.Context) error {
			var script string
			switch sh := c.Args().First(); sh {
			case "bash":
				script = bashCompletion
			case "zsh":
				script = zshCompletion
			case "fish":
				s, err := c.App.ToFishCompletion()
				if err != nil {
					return fmt.Errorf("fish completion: %w", err)
				}
				script = s
			default:
				return usagef("completion: %q is not bash, zsh or fish", sh)
			}
			_, err := fmt.Fprint(c.App.Writer, script)
			return err
		},
	}
}
