package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Guests are the cached test guests built by testdata/guest/build.sh.
type Guests struct {
	Dir string            // the cache directory of this build
	Env map[string]string // guest.env

	BootSectorRaw string // 1 GiB raw disk: boot sector + text at BootSectorLBA
	LinuxBIOSRaw  string // MBR disk, SYSLINUX, data partition 2
	LinuxUEFIRaw  string // GPT disk, ESP with syslinux.efi, data partition 2
	Kernel        string
	Initrd        string

	BootSectorText string // what the boot sector prints after VMFS-BOOTSECTOR-READ
	BuildTime      time.Duration
}

// The names of the VMware VMs under Dir/vmware.
const (
	VMBootSector = "bootsector" // lsilogic, BIOS
	VMLinuxBIOS  = "linux-bios" // pvscsi, BIOS
	VMLinuxUEFI  = "linux-uefi" // lsilogic, firmware = "efi"
)

// Markers the guests print on their first serial port.
const (
	BootSectorEnd    = "VMFS-BOOTSECTOR-END"
	BootSectorRead   = "VMFS-BOOTSECTOR-READ "
	GuestDone        = "VMFS-GUEST-DONE"
	GuestDoneOK      = "VMFS-GUEST-DONE ok"
	GuestError       = "VMFS-GUEST-ERROR"
	GuestDataRead    = "VMFS-GUEST-DATA-READ boot="
	GuestDataWritten = "VMFS-GUEST-DATA-WRITTEN boot="
)

var guests struct {
	once sync.Once
	g    *Guests
	err  error
}

// Guest builds the test guests (cached across runs by script hash) once per
// process and returns them. The build needs root for its apt packages the
// first time; without them it skips (fails in CI).
func Guest(t testing.TB) *Guests {
	t.Helper()
	script := filepath.Join(RepoRoot(t), "testdata", "guest", "build.sh")
	guests.once.Do(func() {
		start := time.Now()
		cmd := exec.Command("bash", script)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			guests.err = fmt.Errorf("%s: %v\n%s", script, err, tail(stderr.String(), 40))
			return
		}
		lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
		dir := lines[len(lines)-1]
		g, err := loadGuests(dir)
		if err != nil {
			guests.err = err
			return
		}
		g.BuildTime = time.Since(start)
		guests.g = g
	})
	if guests.err != nil {
		if strings.Contains(guests.err.Error(), "missing Debian packages") {
			Need(t, "%v", guests.err)
		}
		t.Fatalf("testenv: building the test guests: %v", guests.err)
	}
	return guests.g
}

func loadGuests(dir string) (*Guests, error) {
	b, err := os.ReadFile(filepath.Join(dir, "guest.env"))
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	g := &Guests{
		Dir:            dir,
		Env:            env,
		BootSectorRaw:  filepath.Join(dir, "bootsector.raw"),
		LinuxBIOSRaw:   filepath.Join(dir, "linux-bios.raw"),
		LinuxUEFIRaw:   filepath.Join(dir, "linux-uefi.raw"),
		Kernel:         filepath.Join(dir, "vmlinuz"),
		Initrd:         filepath.Join(dir, "initrd.img"),
		BootSectorText: env["BOOTSECTOR_TEXT"],
	}
	if g.BootSectorText == "" {
		return nil, fmt.Errorf("%s/guest.env: no BOOTSECTOR_TEXT", dir)
	}
	return g, nil
}

// VM copies the VMware VM name (VMBootSector, VMLinuxBIOS, VMLinuxUEFI) into
// a fresh temp dir, so the test owns its source, and returns the .vmx path.
func (g *Guests) VM(t testing.TB, name string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), name)
	CopyTree(t, filepath.Join(g.Dir, "vmware", name), dst)
	return filepath.Join(dst, name+".vmx")
}

// RawCopy copies one of the raw disks into a temp dir (for direct boots,
// which write to the disk) and returns the copy's path.
func (g *Guests) RawCopy(t testing.TB, raw string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(raw))
	if out, err := exec.Command("cp", "--sparse=always", raw, dst).CombinedOutput(); err != nil {
		t.Fatalf("testenv: cp %s: %v %s", raw, err, out)
	}
	return dst
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// CheckLinuxBoot checks the serial output of one boot of the Linux guest:
// it ran with firmware fw, read the data record left by boot number prev
// (0 = never booted) and wrote prev+1, and finished without error. It
// returns the drivers the guest found its disk through.
func CheckLinuxBoot(t testing.TB, out string, fw Firmware, prev int) string {
	t.Helper()
	for _, want := range []string{
		"firmware=" + string(fw),
		fmt.Sprintf("%s%d\n", GuestDataRead, prev),
		fmt.Sprintf("%s%d\n", GuestDataWritten, prev+1),
		GuestDoneOK,
	} {
		if !strings.Contains(strings.ReplaceAll(out, "\r\n", "\n"), want) {
			t.Fatalf("guest serial lacks %q:\n%s", want, tail(out, 40))
		}
	}
	_, rest, _ := strings.Cut(out, "VMFS-GUEST-DISK ")
	line, _, _ := strings.Cut(rest, "\n")
	_, drivers, _ := strings.Cut(line, "drivers=")
	return strings.TrimSpace(drivers)
}
