package hostfacts

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestKVM(t *testing.T) {
	// /dev/null opens but is no KVM: the ioctl fails.
	if err := KVM("/dev/null"); err == nil || !strings.Contains(err.Error(), "KVM_GET_API_VERSION") {
		t.Errorf("KVM(/dev/null) = %v, want a KVM_GET_API_VERSION error", err)
	}
	if err := KVM("/nonexistent/kvm"); err == nil {
		t.Error("KVM(/nonexistent/kvm) = nil")
	}
	if err := HostKVM(true); err == nil || !strings.Contains(err.Error(), NoKVMEnv) {
		t.Errorf("HostKVM(true) = %v, want one naming %s", err, NoKVMEnv)
	}
	// With the variable unset the host's own answer comes back, whichever it is.
	if got, want := HostKVM(false), KVM("/dev/kvm"); (got == nil) != (want == nil) {
		t.Errorf("HostKVM(false) = %v, KVM(/dev/kvm) = %v", got, want)
	}
}

func TestProbe(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == NoKVMEnv {
				return v
			}
			return ""
		}
	}
	h := Probe(context.Background(), true, false, env("1"))
	if !h.KVMChecked || !strings.Contains(h.KVMErr, NoKVMEnv) || h.NetworksChecked {
		t.Errorf("Probe with %s=1: %+v", NoKVMEnv, h)
	}
	h = Probe(context.Background(), true, false, env(""))
	if (h.KVMErr == "") != (KVM("/dev/kvm") == nil) {
		t.Errorf("Probe: %+v, KVM(/dev/kvm) = %v", h, KVM("/dev/kvm"))
	}
	h = Probe(context.Background(), false, false, env("1"))
	if h.KVMChecked || h.KVMErr != "" {
		t.Errorf("Probe without kvm: %+v", h)
	}
}

func TestNetworksFailsFast(t *testing.T) {
	// A libvirt URI nothing answers: an error within the timeout, never a hang.
	start := time.Now()
	_, _, err := Networks(context.Background(), "qemu+unix:///system?socket=/nonexistent/sock", 5*time.Second)
	if err == nil {
		t.Fatal("no error")
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("took %v", d)
	}
	if _, statErr := os.Stat("/usr/bin/virsh"); statErr == nil && !strings.Contains(err.Error(), "net-list") {
		t.Errorf("error %q does not say what failed", err)
	}
}

// TestNetworksLists: the active and inactive lists equal what virsh's own
// net-list says, with a network defined (not started) for the test among
// the inactive ones.
func TestNetworksLists(t *testing.T) {
	if !libvirtdAnswers() {
		t.Skip("libvirtd is not running (scripts/libvirt-up.sh starts it)")
	}
	const name = "vmfs-hostfacts-test"
	xml := filepath.Join(t.TempDir(), "net.xml")
	os.WriteFile(xml, []byte("<network><name>"+name+"</name><bridge name='vmfshf0'/></network>"), 0o644)
	if out, err := exec.Command("virsh", "-c", "qemu:///system", "net-define", xml).CombinedOutput(); err != nil {
		t.Fatalf("virsh net-define: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("virsh", "-c", "qemu:///system", "net-undefine", name).Run() })
	act, inact := virshNetworks(t)
	gotAct, gotInact, err := Networks(context.Background(), "qemu:///system", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gotAct, act) || !slices.Equal(gotInact, inact) || !slices.Contains(gotInact, name) {
		t.Errorf("Networks = active %q, inactive %q; virsh says active %q, inactive %q (with %s)", gotAct, gotInact, act, inact, name)
	}
}

// TestNetworksRPC: asked directly, libvirtd gives the lists virsh gives.
func TestNetworksRPC(t *testing.T) {
	if !libvirtdAnswers() {
		t.Skip("libvirtd is not running (scripts/libvirt-up.sh starts it)")
	}
	if os.Geteuid() != 0 {
		t.Skip("libvirtd asks others than root for polkit authentication")
	}
	act, inact := virshNetworks(t)
	gotAct, gotInact, err := networksRPC(context.Background(), "/run/libvirt/libvirt-sock", "qemu:///system", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gotAct, act) || !slices.Equal(gotInact, inact) {
		t.Errorf("networksRPC = active %q, inactive %q; virsh says active %q, inactive %q", gotAct, gotInact, act, inact)
	}
}

// virshNetworks is what virsh's own net-list says: the active networks,
// then the inactive ones.
func virshNetworks(t *testing.T) (active, inactive []string) {
	t.Helper()
	virsh := func(args ...string) []string {
		out, err := exec.Command("virsh", append([]string{"-q", "-c", "qemu:///system", "net-list", "--name"}, args...)...).Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Fields(string(out))
	}
	all, active := virsh("--all"), virsh()
	for _, n := range all {
		if !slices.Contains(active, n) {
			inactive = append(inactive, n)
		}
	}
	return active, inactive
}

// TestNetworksRPCSilentDaemon: a daemon that accepts and never answers is
// a timeout, within the time given.
func TestNetworksRPCSilentDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	start := time.Now()
	_, _, err = networksRPC(context.Background(), sock, "qemu:///system", 200*time.Millisecond)
	if err == nil || !isTimeout(err) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}

// A socket file that a stopped libvirtd left behind is answered at once,
// without a virsh run that would be refused on it too.
func TestNetworksStaleSocket(t *testing.T) {
	if _, err := exec.LookPath("virsh"); err != nil {
		t.Skip("virsh is not installed")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "libvirt-sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("socket file gone: %v", err)
	}
	_, _, err = networks(context.Background(), "qemu:///system", 3*time.Second, sock, filepath.Join(dir, "virtqemud-sock"))
	if err == nil || !strings.Contains(err.Error(), "libvirtd is not running") || !strings.Contains(err.Error(), sock) {
		t.Fatalf("err = %v, want libvirtd is not running naming %s", err, sock)
	}
	// Neither socket: not running, and no connection tried.
	_, _, err = networks(context.Background(), "qemu:///system", 3*time.Second, filepath.Join(dir, "a"), filepath.Join(dir, "b"))
	if err == nil || !strings.Contains(err.Error(), "no socket") {
		t.Fatalf("err = %v, want no socket", err)
	}
}

// libvirtdAnswers says whether libvirtd accepts connections on its socket
// (the file can outlive the daemon).
func libvirtdAnswers() bool {
	c, err := net.DialTimeout("unix", "/run/libvirt/libvirt-sock", time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
