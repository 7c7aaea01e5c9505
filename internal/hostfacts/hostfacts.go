// Package hostfacts probes what this host offers the machine a mount
// serves: a usable KVM, and the networks of its libvirt. Every probe is
// optional, bounded in time, and reports why it found nothing.
package hostfacts

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vmfs/vmfs/translate"
)

// NoKVMEnv set to 1 makes vmfs (and the test helpers) behave as if the
// host had no KVM.
const NoKVMEnv = "VMFS_NO_KVM"

// kvmAPIVersion is the only KVM API version Linux has answered since 2.6.22.
const (
	kvmGetAPIVersion = 0xAE00
	kvmAPIVersion    = 12
)

// KVM reports whether dev (normally /dev/kvm) opens and answers
// KVM_GET_API_VERSION with the stable API version; nil when it does.
func KVM(dev string) error {
	f, err := os.OpenFile(dev, os.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	v, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), kvmGetAPIVersion, 0)
	if errno != 0 {
		return fmt.Errorf("%s: KVM_GET_API_VERSION: %w", dev, errno)
	}
	if v != kvmAPIVersion {
		return fmt.Errorf("%s: KVM_GET_API_VERSION answers %d, not %d", dev, v, kvmAPIVersion)
	}
	return nil
}

// HostKVM is KVM("/dev/kvm"), unless noKVM (VMFS_NO_KVM=1) hides it.
func HostKVM(noKVM bool) error {
	if noKVM {
		return errors.New(NoKVMEnv + "=1")
	}
	return KVM("/dev/kvm")
}

// The sockets of libvirt's QEMU driver: libvirtd's, or the modular
// virtqemud's.
const (
	monolithicSock = "/run/libvirt/libvirt-sock"
	modularSock    = "/run/libvirt/virtqemud-sock"
)

// Networks lists the active and the inactive networks of libvirt at uri
// with virsh, within timeout. It fails fast when virsh is missing or no
// libvirt socket exists (for qemu:///system).
func Networks(ctx context.Context, uri string, timeout time.Duration) (active, inactive []string, err error) {
	return networks(ctx, uri, timeout, monolithicSock, modularSock)
}

// networks is Networks with the sockets of libvirtd (mono) and virtqemud
// (modular) named.
func networks(ctx context.Context, uri string, timeout time.Duration, mono, modular string) (active, inactive []string, err error) {
	if _, err := exec.LookPath("virsh"); err != nil {
		return nil, nil, errors.New("virsh is not installed")
	}
	if uri == "qemu:///system" {
		// libvirt's QEMU driver answers on libvirtd's socket, or on the
		// modular virtqemud's.
		_, errMono := os.Stat(mono)
		_, errModular := os.Stat(modular)
		if errMono != nil && errModular != nil {
			return nil, nil, errors.New("libvirt is not running (no socket in /run/libvirt)")
		}
		// libvirtd itself answers in a millisecond what a virsh run
		// takes 10 ms or more to; virsh stays the fallback (modular
		// daemons, authentication, any error).
		act, inact, err := networksRPC(ctx, mono, uri, timeout)
		if err == nil {
			return act, inact, nil
		}
		if errors.Is(err, syscall.ECONNREFUSED) && errModular != nil {
			// A socket file left by a libvirtd that has stopped: virsh
			// would be refused on it too, 10 ms or more later.
			return nil, nil, fmt.Errorf("libvirtd is not running (%s refuses connections)", mono)
		}
		if isTimeout(err) {
			// virsh would wait as long again for the same daemon.
			return nil, nil, fmt.Errorf("libvirtd (%s): no answer in %v", uri, timeout)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Both lists in one virsh run (one process, one connection): the
	// table of every network with its state, "NAME STATE AUTOSTART
	// PERSISTENT" a line (LC_ALL=C: the words are English).
	cmd := exec.CommandContext(ctx, "virsh", "-q", "-c", uri, "net-list", "--all")
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.Output()
	if ctx.Err() != nil {
		return nil, nil, fmt.Errorf("virsh -c %s net-list: no answer in %v", uri, timeout)
	}
	if err != nil {
		msg := err.Error()
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			msg = strings.TrimSpace(strings.SplitN(string(ee.Stderr), "\n", 2)[0])
		}
		return nil, nil, fmt.Errorf("virsh -c %s net-list: %s", uri, msg)
	}
	var all, act []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if len(f) < 4 || (f[len(f)-3] != "active" && f[len(f)-3] != "inactive") {
			return nil, nil, fmt.Errorf("virsh -c %s net-list: unexpected line %q", uri, strings.TrimSpace(l))
		}
		name := strings.Join(f[:len(f)-3], " ")
		all = append(all, name)
		if f[len(f)-3] == "active" {
			act = append(act, name)
		}
	}
	for _, n := range all {
		if !slices.Contains(act, n) {
			inactive = append(inactive, n)
		}
	}
	if act == nil {
		act = []string{}
	}
	return act, inactive, nil
}

// Probe gathers the facts a translation uses: KVM when kvm, libvirt's
// networks (qemu:///system, 3 seconds at most) when networks. getenv
// reads the environment (os.Getenv).
func Probe(ctx context.Context, kvm, networks bool, getenv func(string) string) *translate.Host {
	h := &translate.Host{}
	if kvm {
		h.KVMChecked = true
		if err := HostKVM(getenv(NoKVMEnv) == "1"); err != nil {
			h.KVMErr = err.Error()
		}
	}
	if networks {
		h.NetworksChecked = true
		act, inact, err := Networks(ctx, "qemu:///system", 3*time.Second)
		if err != nil {
			h.NetworksErr = err.Error()
		} else {
			h.Networks, h.Inactive = act, inact
		}
	}
	return h
}
