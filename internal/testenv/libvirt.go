package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"libvirt.org/go/libvirtxml"
)

const libvirtURI = "qemu:///system"

var lv struct {
	once sync.Once
	skip string // not installed
	err  error
}

// StartLibvirt makes sure libvirtd (with the QEMU driver) and virtlogd
// answer on qemu:///system, starting them when they are not running. It
// skips when libvirt is not installed, except in CI where that fails. What it
// started is stopped when Main returns (unless VMFS_TEST_KEEP_LIBVIRT=1).
func StartLibvirt(t testing.TB) {
	t.Helper()
	lv.once.Do(startLibvirt)
	if lv.skip != "" {
		Need(t, "%s", lv.skip)
	}
	if lv.err != nil {
		t.Fatalf("testenv: starting libvirt: %v", lv.err)
	}
}

const virtlogdSock = "/run/libvirt/virtlogd-sock"

// virtlogdAnswers reports whether virtlogd accepts connections. The socket
// file alone says nothing: /run may outlive the daemon (it is not a tmpfs on
// every machine), and a file left by a virtlogd that died refuses
// connections, which libvirt reports only when a domain starts.
func virtlogdAnswers() bool {
	c, err := net.DialTimeout("unix", virtlogdSock, 2*time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func waitVirtlogd(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for !virtlogdAnswers() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

func libvirtAnswers() bool {
	cmd := exec.Command("virsh", "-c", libvirtURI, "uri")
	return cmd.Run() == nil
}

func startLibvirt() {
	lv.skip, lv.err = "", nil
	for _, c := range []string{"virsh", "libvirtd", "virtlogd"} {
		if _, err := lookPathSbin(c); err != nil {
			lv.skip = c + " not installed (Debian packages libvirt-daemon-system, libvirt-clients)"
			return
		}
	}
	if !fileExists("/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so") &&
		!fileExists("/usr/lib64/libvirt/connection-driver/libvirt_driver_qemu.so") {
		lv.skip = "libvirt's QEMU driver not installed (Debian package libvirt-daemon-driver-qemu)"
		return
	}
	if _, err := user.Lookup("libvirt-qemu"); err != nil {
		lv.skip = "no libvirt-qemu user (Debian package libvirt-daemon-system creates it)"
		return
	}
	if os.Geteuid() == 0 {
		kvmForGroup()
	}
	// Only root can reach virtlogd's socket; libvirtd answering is all a
	// user can check.
	up := libvirtAnswers()
	if up && (os.Geteuid() != 0 || virtlogdAnswers()) {
		return
	}
	if os.Geteuid() != 0 {
		lv.skip = "libvirtd is not running and only root can start it"
		return
	}
	for _, d := range []string{"/run/libvirt", "/run/libvirt/qemu", "/var/log/libvirt/qemu",
		"/var/lib/libvirt/qemu", "/var/lib/libvirt/qemu/nvram", "/var/cache/libvirt/qemu",
		"/var/lib/libvirt/images", "/var/lib/libvirt/boot"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			lv.err = err
			return
		}
	}
	if !virtlogdAnswers() {
		pid := "/run/vmfs-test-virtlogd.pid"
		if err := startDaemon("virtlogd", pid); err != nil {
			lv.err = err
			return
		}
		if !waitVirtlogd(20 * time.Second) {
			lv.err = fmt.Errorf("virtlogd started but does not answer on %s", virtlogdSock)
			return
		}
	}
	if up {
		return
	}
	pid := "/run/vmfs-test-libvirtd.pid"
	if err := startDaemon("libvirtd", pid); err != nil {
		lv.err = err
		return
	}
	deadline := time.Now().Add(60 * time.Second)
	for !libvirtAnswers() {
		if time.Now().After(deadline) {
			lv.err = fmt.Errorf("libvirtd started but %s does not answer after 60s", libvirtURI)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// kvmForGroup gives /dev/kvm to group kvm with mode 0660, as udev does on a
// Debian host, where a container without udev left it root-only. Without
// it libvirt finds KVM both probed and unusable for libvirt-qemu, and
// probes QEMU's capabilities again on every define and start (a minute
// each on a busy machine).
func kvmForGroup() {
	fi, err := os.Stat("/dev/kvm")
	if err != nil || !KVMWorks() {
		return
	}
	g, err := user.LookupGroup("kvm")
	if err != nil {
		return
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || (int(st.Gid) == gid && fi.Mode().Perm()&0o060 == 0o060) {
		return
	}
	if int(st.Gid) != gid {
		if err := os.Chown("/dev/kvm", int(st.Uid), gid); err != nil {
			return
		}
	}
	_ = os.Chmod("/dev/kvm", fi.Mode().Perm()|0o060)
}

func lookPathSbin(c string) (string, error) {
	if p, err := exec.LookPath(c); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(d, c); fileExists(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", c)
}

// startDaemon starts a libvirt daemon with --daemon and a pid file of its
// own, and arranges for that pid to be stopped when Main returns.
func startDaemon(name, pidFile string) error {
	bin, err := lookPathSbin(name)
	if err != nil {
		return err
	}
	out, err := exec.Command(bin, "--daemon", "--pid-file", pidFile).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s --daemon: %v: %s", name, err, out)
	}
	if os.Getenv("VMFS_TEST_KEEP_LIBVIRT") == "1" {
		return nil
	}
	atExit(func() {
		// Another test process may be using the daemon: leave it running
		// while any domain is defined.
		if out, err := Virsh("list", "--all", "--name"); err != nil || strings.TrimSpace(out) != "" {
			return
		}
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			return
		}
		if syscall.Kill(pid, syscall.SIGTERM) != nil {
			return
		}
		for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	return nil
}

// LibvirtAccelTiny is AccelTiny for guests under libvirt, whose QEMU runs
// as libvirt-qemu (group kvm): kvm only where that user may open /dev/kvm.
func LibvirtAccelTiny() string {
	if !KVMWorks() {
		return "tcg"
	}
	fi, err := os.Stat("/dev/kvm")
	if err != nil {
		return "tcg"
	}
	perm := fi.Mode().Perm()
	if perm&0o006 == 0o006 {
		return "kvm"
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	g, err := user.LookupGroup("kvm")
	if ok && err == nil && perm&0o060 == 0o060 && g.Gid == strconv.Itoa(int(st.Gid)) {
		return "kvm"
	}
	return "tcg"
}

// Virsh runs virsh on qemu:///system and returns its output.
func Virsh(args ...string) (string, error) {
	cmd := exec.Command("virsh", append([]string{"-c", libvirtURI}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("virsh %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Domain is a libvirt domain a test defined and started.
type Domain struct {
	Name    string
	Serial  string // the file its first serial port writes
	XMLPath string // the XML as defined (after the test rewrites)
	started time.Time

	lastState  time.Time
	stateCache string
}

var domainSeq atomic.Int64

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// DomainRewrite is what StartDomain changes in a domain XML before
// defining it: a unique name and no UUID, type qemu unless accel is kvm (a
// host-passthrough CPU dropped with it), the first serial port to a file,
// consoles and graphics dropped, interfaces on user-mode networking, and
// destroy on reboot (a guest panic reboots). Disks are left as generated.
func DomainRewrite(xml []byte, name, accel, serial string) ([]byte, error) {
	var d libvirtxml.Domain
	if err := d.Unmarshal(string(xml)); err != nil {
		return nil, fmt.Errorf("domain xml: %v", err)
	}
	d.Name, d.UUID = name, ""
	if accel == "kvm" {
		d.Type = "kvm"
	} else {
		d.Type = "qemu"
		if d.CPU != nil && (d.CPU.Mode == "host-passthrough" || d.CPU.Mode == "host-model") {
			d.CPU = nil
		}
	}
	d.OnReboot = "destroy"
	if d.Devices == nil {
		d.Devices = &libvirtxml.DomainDeviceList{}
	}
	port := uint(0)
	d.Devices.Serials = []libvirtxml.DomainSerial{{
		Source: &libvirtxml.DomainChardevSource{File: &libvirtxml.DomainChardevSourceFile{Path: serial}},
		Target: &libvirtxml.DomainSerialTarget{Type: "isa-serial", Port: &port},
	}}
	d.Devices.Consoles = nil
	d.Devices.Graphics = nil
	for i := range d.Devices.Interfaces {
		iface := &d.Devices.Interfaces[i]
		iface.Source = &libvirtxml.DomainInterfaceSource{User: &libvirtxml.DomainInterfaceSourceUser{}}
		iface.VirtualPort, iface.Target, iface.Script = nil, nil, nil
	}
	s, err := d.Marshal()
	if err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// StartDomain rewrites the domain XML at path (see DomainRewrite), defines
// and starts it; t.Cleanup destroys and undefines it (with its NVRAM).
func StartDomain(t testing.TB, path, accel string) *Domain {
	t.Helper()
	StartLibvirt(t)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("vmfs-test-%d-%d-%s", os.Getpid(), domainSeq.Add(1),
		unsafeName.ReplaceAllString(t.Name(), "_"))
	if len(name) > 100 {
		name = name[:100]
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	Traversable(t, dir)
	dom := &Domain{Name: name, Serial: filepath.Join(dir, "serial.log"), XMLPath: filepath.Join(dir, "domain.xml")}
	x, err := DomainRewrite(b, name, accel, dom.Serial)
	if err != nil {
		t.Fatalf("testenv: %s: %v", path, err)
	}
	if err := os.WriteFile(dom.XMLPath, x, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Virsh("define", dom.XMLPath); err != nil {
		t.Fatalf("testenv: %v\n%s", err, x)
	}
	t.Cleanup(func() { dom.remove(t) })
	dom.started = time.Now()
	if _, err := Virsh("start", name); err != nil {
		t.Fatalf("testenv: %v\n%s\nqemu log:\n%s", err, x, dom.qemuLog())
	}
	return dom
}

// remove destroys and undefines the domain. When libvirtd went away (a
// test process that started it may stop it), it is started again first,
// and as a last resort the domain's QEMU is killed through its pid file.
func (d *Domain) remove(t testing.TB) {
	t.Helper()
	var errs []string
	for try := 0; try < 2; try++ {
		if try > 0 {
			startLibvirt()
		}
		if st := d.state(true); st != "shut off" && st != "" {
			_, _ = Virsh("destroy", d.Name)
		}
		_, err := Virsh("undefine", "--nvram", d.Name)
		if err == nil {
			return
		}
		if _, err2 := Virsh("undefine", d.Name); err2 == nil {
			return
		}
		errs = append(errs, err.Error())
		if !strings.Contains(err.Error(), "connect") {
			break
		}
	}
	if b, err := os.ReadFile(filepath.Join("/run/libvirt/qemu", d.Name+".pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	t.Errorf("testenv: cannot remove domain %s: %s", d.Name, strings.Join(errs, "; "))
}

// state is virsh domstate, cached for a second unless fresh.
func (d *Domain) state(fresh bool) string {
	if !fresh && time.Since(d.lastState) < time.Second {
		return d.stateCache
	}
	out, err := Virsh("domstate", d.Name)
	if err != nil {
		out = ""
	}
	d.stateCache, d.lastState = strings.TrimSpace(out), time.Now()
	return d.stateCache
}

func (d *Domain) qemuLog() string {
	b, _ := os.ReadFile(filepath.Join("/var/log/libvirt/qemu", d.Name+".log"))
	return tail(string(b), 20)
}

// Output is what the guest wrote on its serial port so far.
func (d *Domain) Output() string {
	b, _ := os.ReadFile(d.Serial)
	return string(b)
}

// WaitFor waits until the serial output holds marker and returns the time
// since the domain started; it fails the test if the domain stops first.
func (d *Domain) WaitFor(t testing.TB, marker string, timeout time.Duration) time.Duration {
	t.Helper()
	exited := func() bool { st := d.state(false); return st != "running" && st != "paused" }
	if _, err := waitSerial(d.Output, exited, marker, timeout); err != nil {
		t.Fatalf("domain %s (%s): %v\nqemu log:\n%s", d.Name, d.XMLPath, err, d.qemuLog())
	}
	return time.Since(d.started)
}

// WaitShutoff waits until the domain is shut off (the guest powered off).
func (d *Domain) WaitShutoff(t testing.TB, timeout time.Duration) time.Duration {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for d.state(true) != "shut off" {
		if time.Now().After(deadline) {
			t.Fatalf("domain %s still %q after %v; serial:\n%s", d.Name, d.state(true), timeout, tail(d.Output(), 20))
		}
		time.Sleep(250 * time.Millisecond)
	}
	return time.Since(d.started)
}
