package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vmfs/vmfs/internal/testenv"
)

// runBin runs bin with args and returns stdout, stderr and the exit code.
func runBin(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), 0
}

// TestVersion: --version and the version command say the same line, with
// the version and commit the link-time strings give, or the build info's.
func TestVersion(t *testing.T) {
	plain := testenv.BuildVMFS(t)
	stamped := filepath.Join(t.TempDir(), "vmfs")
	build := exec.Command(goTool(t), "build", "-o", stamped,
		"-ldflags", "-X main.buildVersion=v9.8.7-3-gabc1234-dirty -X main.buildCommit=abc1234def-modified", ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name, bin string
		want      *regexp.Regexp
	}{
		{"build info", plain, regexp.MustCompile(`^vmfs version \S+ \(commit (not recorded|[0-9a-f]{40}(, modified)?), go1\.\S+\)\n$`)},
		{"link-time", stamped, regexp.MustCompile(`^vmfs version v9\.8\.7-3-gabc1234-dirty \(commit abc1234def, modified, go1\.\S+\)\n$`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var lines []string
			for _, args := range [][]string{{"--version"}, {"-v"}, {"version"}} {
				out, stderr, code := runBin(t, tc.bin, args...)
				if code != 0 || stderr != "" {
					t.Errorf("vmfs %v: exit %d, stderr %q", args, code, stderr)
				}
				if !tc.want.MatchString(out) {
					t.Errorf("vmfs %v: %q does not match %s", args, out, tc.want)
				}
				lines = append(lines, out)
			}
			if lines[0] != lines[1] || lines[0] != lines[2] {
				t.Errorf("--version, -v and version differ: %q", lines)
			}
		})
	}
	if _, stderr, code := runBin(t, plain, "version", "extra"); code != 2 || !strings.Contains(stderr, "see 'vmfs version --help'") {
		t.Errorf("version extra: exit %d, %q", code, stderr)
	}
}

func goTool(t *testing.T) string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// TestHelp: `vmfs help CMD` is `vmfs CMD --help`, the form every usage
// error points to, for every command.
func TestHelp(t *testing.T) {
	bin := testenv.BuildVMFS(t)
	top, _, code := runBin(t, bin, "help")
	if code != 0 {
		t.Fatalf("vmfs help: exit %d", code)
	}
	if flag, _, _ := runBin(t, bin, "--help"); flag != top {
		t.Errorf("vmfs help and vmfs --help differ:\n%s\n---\n%s", top, flag)
	}
	for _, cmd := range []string{"mount", "unmount", "inspect", "status", "materialize", "version", "man", "completion"} {
		t.Run(cmd, func(t *testing.T) {
			if !regexp.MustCompile(`(?m)^   ` + cmd + `\b`).MatchString(top) {
				t.Errorf("vmfs help does not list %s:\n%s", cmd, top)
			}
			help, stderr, code := runBin(t, bin, "help", cmd)
			if code != 0 || stderr != "" {
				t.Fatalf("vmfs help %s: exit %d, stderr %q", cmd, code, stderr)
			}
			if !strings.Contains(help, "vmfs "+cmd+" - ") {
				t.Errorf("vmfs help %s:\n%s", cmd, help)
			}
			if flag, _, _ := runBin(t, bin, cmd, "--help"); flag != help {
				t.Errorf("vmfs help %s and vmfs %s --help differ:\n%s\n---\n%s", cmd, cmd, help, flag)
			}
		})
	}
	if _, stderr, code := runBin(t, bin, "help", "nosuch"); code != 2 || stderr != "vmfs: help: unknown command \"nosuch\"; see 'vmfs --help'\n" {
		t.Errorf("vmfs help nosuch: exit %d, stderr %q", code, stderr)
	}
	if help, _, _ := runBin(t, bin, "help", "mount"); !strings.Contains(help, "--read-only") {
		t.Errorf("vmfs help mount does not show --read-only:\n%s", help)
	}
}

// TestManPage: `vmfs man` renders with man(1) without a warning and
// documents every command.
func TestManPage(t *testing.T) {
	testenv.NeedCommands(t, "man")
	bin := testenv.BuildVMFS(t)
	page, stderr, code := runBin(t, bin, "man")
	if code != 0 || stderr != "" {
		t.Fatalf("vmfs man: exit %d, stderr %q", code, stderr)
	}
	file := filepath.Join(t.TempDir(), "vmfs.1")
	if err := os.WriteFile(file, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("man", "--warnings", "-l", file)
	cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat", "LANG=C.UTF-8")
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	if err := cmd.Run(); err != nil || errs.Len() > 0 {
		t.Fatalf("man -l: %v\n%s", err, errs.String())
	}
	text := out.String()
	for _, want := range []string{"NAME", "vmfs - move virtual machines", "mount", "materialize", "inspect", "--read-only", "--log-level"} {
		if !strings.Contains(text, want) {
			t.Errorf("rendered man page lacks %q:\n%s", want, text)
		}
	}
}

// TestCompletion: the bash script loads and offers the commands and the
// flags of a command; the zsh and fish ones parse where those shells are
// installed; an unknown shell is a usage error.
func TestCompletion(t *testing.T) {
	testenv.NeedCommands(t, "bash")
	bin := testenv.BuildVMFS(t)
	script := `source <(vmfs completion bash) && complete -p vmfs || exit 1
COMP_WORDS=(vmfs ma); COMP_CWORD=1; _vmfs_complete; echo "commands: ${COMPREPLY[*]}"
COMP_WORDS=(vmfs mount --rea); COMP_CWORD=2; _vmfs_complete; echo "flags: ${COMPREPLY[*]}"
COMP_WORDS=(vmfs ''); COMP_CWORD=1; _vmfs_complete; echo "all: ${COMPREPLY[*]}"`
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	for _, want := range []string{
		"complete -o filenames -F _vmfs_complete vmfs",
		"commands: materialize man\n",
		"flags: --read-only\n",
		"all: mount unmount umount inspect status list ls materialize convert serve version man completion help h\n",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("bash completion: no %q in\n%s", want, out)
		}
	}
	for _, sh := range []string{"zsh", "fish"} {
		script, stderr, code := runBin(t, bin, "completion", sh)
		if code != 0 || stderr != "" || !strings.Contains(script, "vmfs") {
			t.Errorf("completion %s: exit %d, stderr %q", sh, code, stderr)
		}
		if _, err := exec.LookPath(sh); err != nil {
			continue
		}
		check := exec.Command(sh, "-n")
		check.Stdin = strings.NewReader(script)
		if out, err := check.CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", sh, err, out)
		}
	}
	if _, stderr, code := runBin(t, bin, "completion", "tcsh"); code != 2 || !strings.Contains(stderr, `"tcsh" is not bash, zsh or fish`) {
		t.Errorf("completion tcsh: exit %d, %q", code, stderr)
	}
}
