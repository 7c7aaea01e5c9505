package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLiveUsage: --live's own flags and the flags it has no use for are
// refused with exit 2 and one line before anything is looked up; a
// MOUNTPOINT that is no vmfs mount is one line and exit 1. DESTDIR is
// never created.
func TestLiveUsage(t *testing.T) {
	mnt := t.TempDir()
	dest := filepath.Join(t.TempDir(), "dest")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"a translation flag", []string{"materialize", "--live", "--to", "qemu", mnt, dest}, 2,
			`vmfs: --to does not apply to --live (the copies are what the running guest sees); see 'vmfs materialize --help'`},
		{"overlay", []string{"materialize", "--live", "--discard-overlay", mnt, dest}, 2,
			`vmfs: --discard-overlay does not apply to --live (the copies are what the running guest sees); see 'vmfs materialize --help'`},
		{"a target option", []string{"materialize", "--live", "--export-url", "https://h:8443", mnt, dest}, 2,
			`vmfs: --export-url does not apply to --live (the copies are what the running guest sees); see 'vmfs materialize --help'`},
		{"a remote source's flag", []string{"materialize", "--live", "--insecure", mnt, dest}, 2,
			`vmfs: --insecure does not apply to --live (the copies are what the running guest sees); see 'vmfs materialize --help'`},
		{"format", []string{"materialize", "--live", "--format", "vmdk", mnt, dest}, 2,
			`vmfs: --format: --live copies disks as qcow2 or raw, not "vmdk"; see 'vmfs materialize --help'`},
		{"bandwidth", []string{"materialize", "--live", "--bandwidth", "-1", mnt, dest}, 2,
			`vmfs: --bandwidth: -1 is below 0; see 'vmfs materialize --help'`},
		{"domain without --live", []string{"materialize", "--domain", "web", mnt, dest}, 2,
			`vmfs: --domain goes with --live; see 'vmfs materialize --help'`},
		{"bandwidth without --live", []string{"materialize", "--bandwidth", "5", mnt, dest}, 2,
			`vmfs: --bandwidth goes with --live; see 'vmfs materialize --help'`},
		{"not a mount", []string{"materialize", "--live", mnt, dest}, 1,
			`vmfs: ` + mnt + `: not a vmfs mount ('vmfs status' lists them)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stderr, code := runCLI(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if line := oneLine(t, stderr, tc.args...); line != tc.want {
				t.Errorf("stderr\n%s\nwant\n%s", line, tc.want)
			}
			if _, err := os.Stat(dest); err == nil {
				t.Errorf("%s was created", dest)
			}
		})
	}
}
