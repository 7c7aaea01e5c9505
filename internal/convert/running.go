package convert

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// notRunning refuses a mount whose guest runs: a process (QEMU, a
// libvirt domain's or one started by hand) holding one of its disk files
// open, or a running libvirt domain whose disks are the mount's. A
// conversion under a running guest would corrupt its file systems.
func notRunning(ctx context.Context, tg target) error {
	disks := map[string]bool{}
	for _, d := range tg.drives {
		disks[d.Path] = true
	}
	if pid, comm, file, ok := holder(disks); ok {
		return fmt.Errorf("%s: the guest is running: process %d (%s) has %s open; shut the guest down before converting it", tg.mnt, pid, comm, file)
	}
	if dom, file, ok := libvirtDomain(ctx, disks); ok {
		return fmt.Errorf("%s: the guest is running: libvirt domain %q uses %s; shut it down before converting it", tg.mnt, dom, file)
	}
	return nil
}

// holder finds a process other than this one with one of files open.
// Processes whose descriptors cannot be read (another user's, when not
// root) are passed over: libvirtDomain covers libvirt's QEMU.
func holder(files map[string]bool) (pid int, comm, file string, ok bool) {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, "", "", false
	}
	self := os.Getpid()
	for _, p := range procs {
		n, err := strconv.Atoi(p.Name())
		if err != nil || n == self {
			continue
		}
		fdDir := filepath.Join("/proc", p.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			t, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || !files[t] {
				continue
			}
			c, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "comm"))
			return n, strings.TrimSpace(string(c)), t, true
		}
	}
	return 0, "", "", false
}

// libvirtDomain asks the system libvirt, when it runs, for a running
// domain with one of files as a disk (virsh, bounded in time).
func libvirtDomain(ctx context.Context, files map[string]bool) (dom, file string, ok bool) {
	if _, err := exec.LookPath("virsh"); err != nil {
		return "", "", false
	}
	found := false
	for _, s := range []string{"/run/libvirt/libvirt-sock", "/run/libvirt/virtqemud-sock"} {
		if _, err := os.Stat(s); err == nil {
			found = true
		}
	}
	if !found {
		return "", "", false
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	virsh := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "virsh", append([]string{"-q", "-c", "qemu:///system"}, args...)...)
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		return cmd.Output()
	}
	out, err := virsh("list", "--name", "--state-running", "--state-paused")
	if err != nil {
		return "", "", false
	}
	for _, name := range strings.Fields(string(out)) {
		blk, err := virsh("domblklist", "--details", name)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(blk))
		for sc.Scan() {
			// Type Device Target Source
			f := strings.Fields(sc.Text())
			if len(f) >= 4 && files[strings.Join(f[3:], " ")] {
				return name, f[3], true
			}
		}
	}
	return "", "", false
}
