package testenv

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Markers of the counting guest (CounterVM) on its serial port.
const (
	CounterBoot = "VMFS-COUNTER-BOOT n=" // at boot: the count read from the disk
	CounterTick = "VMFS-COUNTER n="      // after each count written and synced
)

// counterInit is the /init of the counting guest: it finds the data
// partition as the test guest's init does, reads the count a previous
// boot left in the partition's second sector, and then counts forever:
// each tick writes 64 KiB of random data somewhere in the partition (so a
// copy of the disk has changing data to follow), the count (synced), and
// prints it.
const counterInit = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
while read -r m; do insmod "/lib/modules/$m.ko" 2>/dev/null; done </etc/modules
part=
i=0
while [ $i -lt 100 ] && [ -z "$part" ]; do
	for b in /sys/block/*; do
		b=${b##*/}
		for p in "/dev/${b}2" "/dev/${b}p2"; do
			[ -b "$p" ] || continue
			if [ "$(head -c 8 "$p" 2>/dev/null)" = VMFSDATA ]; then part=$p; break 2; fi
		done
	done
	[ -n "$part" ] || { sleep 0.2; i=$((i + 1)); }
done
if [ -z "$part" ]; then echo "VMFS-GUEST-ERROR no data partition"; poweroff -f; fi
rec=$(dd if="$part" bs=512 skip=1 count=1 2>/dev/null | tr -d '\000' | head -n 1)
n=${rec#VMFSCOUNT n=}
case "$n" in ''|*[!0-9]*) n=0 ;; esac
echo "VMFS-COUNTER-BOOT n=$n"
while :; do
	n=$((n + 1))
	dd if=/dev/urandom of="$part" bs=64k seek=$((16 + n % 96)) count=1 conv=notrunc 2>/dev/null
	{ printf 'VMFSCOUNT n=%d\n' "$n"; head -c 500 /dev/zero; } | head -c 512 >/tmp/rec
	if dd if=/tmp/rec of="$part" bs=512 seek=1 count=1 conv=notrunc,fsync 2>/tmp/dd.err; then
		echo "VMFS-COUNTER n=$n"
	else
		echo "VMFS-GUEST-ERROR write failed: $(tr '\n' ' ' </tmp/dd.err)"
	fi
	sleep 0.5
done
`

// CounterVM makes a VMware VM (a .vmx and a monolithicSparse VMDK, as
// VMLinuxBIOS) of the BIOS Linux guest whose init counts instead of
// powering off (counterInit), in a fresh temp dir, and returns the .vmx.
// The guest boots from its own disk; the count lives on the disk, at
// CounterOffset. grow, when not nil, may change the raw disk before it is
// converted (make it larger, add data).
func (g *Guests) CounterVM(t testing.TB, grow func(raw string)) string {
	t.Helper()
	NeedCommands(t, "cpio", "mcopy", "qemu-img", "qemu-io")
	work := t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "init"), []byte(counterInit), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0")
	cmd.Dir, cmd.Stdin = work, strings.NewReader("init\n")
	archive, err := cmd.Output()
	if err != nil {
		t.Fatalf("testenv: cpio: %v", err)
	}
	initrd, err := os.ReadFile(g.Initrd)
	if err != nil {
		t.Fatal(err)
	}
	// The kernel unpacks concatenated archives in turn: this /init
	// replaces the guest's.
	var buf bytes.Buffer
	buf.Write(initrd)
	zw := gzip.NewWriter(&buf)
	zw.Write(archive)
	zw.Close()
	newInitrd := filepath.Join(work, "initrd.img")
	if err := os.WriteFile(newInitrd, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(work, "counter.raw")
	if out, err := exec.Command("cp", "--sparse=always", g.LinuxBIOSRaw, raw).CombinedOutput(); err != nil {
		t.Fatalf("testenv: cp: %v %s", err, out)
	}
	// Partition 1, the FAT file system with SYSLINUX, starts at 1 MiB.
	if out, err := exec.Command("mcopy", "-o", "-i", raw+"@@1048576", newInitrd, "::/initrd.img").CombinedOutput(); err != nil {
		t.Fatalf("testenv: mcopy: %v %s", err, out)
	}
	if grow != nil {
		grow(raw)
	}
	dir := filepath.Join(t.TempDir(), VMLinuxBIOS)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	vmdk := filepath.Join(dir, VMLinuxBIOS+".vmdk")
	if out, err := exec.Command("qemu-img", "convert", "-q", "-f", "raw", "-O", "vmdk",
		"-o", "subformat=monolithicSparse,adapter_type=lsilogic", raw, vmdk).CombinedOutput(); err != nil {
		t.Fatalf("testenv: qemu-img convert: %v %s", err, out)
	}
	os.Remove(raw)
	vmx := filepath.Join(dir, VMLinuxBIOS+".vmx")
	if err := copyFile(filepath.Join(g.Dir, "vmware", VMLinuxBIOS, VMLinuxBIOS+".vmx"), vmx); err != nil {
		t.Fatal(err)
	}
	return vmx
}

// CounterOffset is where on the guest's disk the counting guest keeps its
// count ("VMFSCOUNT n=N\n"): the data partition's second sector.
func (g *Guests) CounterOffset(t testing.TB) int64 {
	t.Helper()
	off, err := strconv.ParseInt(g.Env["DATA_PART_OFFSET"], 10, 64)
	if err != nil {
		t.Fatalf("testenv: guest.env: DATA_PART_OFFSET %q", g.Env["DATA_PART_OFFSET"])
	}
	return off + 512
}

var counterTick = regexp.MustCompile(regexp.QuoteMeta(CounterTick) + `(\d+)`)

// LastCount is the last count the counting guest printed (-1: none yet).
func LastCount(serial string) int {
	m := counterTick.FindAllStringSubmatch(serial, -1)
	if len(m) == 0 {
		return -1
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n
}

var countRecord = regexp.MustCompile(`^VMFSCOUNT n=(\d+)\n`)

// DiskCount reads the count from a disk image of the counting guest
// (format qcow2 or raw), also while a QEMU has it open (qemu-io -U).
func (g *Guests) DiskCount(t testing.TB, image, format string) int {
	t.Helper()
	off := g.CounterOffset(t)
	out, err := exec.Command("qemu-io", "-U", "-r", "-f", format, "-c", fmt.Sprintf("read -v %d 64", off), image).CombinedOutput()
	if err != nil {
		t.Fatalf("testenv: qemu-io %s: %v %s", image, err, out)
	}
	// Lines of "OFFSET:  16 hex bytes  text".
	var b []byte
	for _, line := range strings.Split(string(out), "\n") {
		_, rest, ok := strings.Cut(line, ":  ")
		if !ok {
			continue
		}
		for _, h := range strings.Fields(rest)[:min(16, len(strings.Fields(rest)))] {
			v, err := strconv.ParseUint(h, 16, 8)
			if err != nil {
				break
			}
			b = append(b, byte(v))
		}
	}
	m := countRecord.FindSubmatch(b)
	if m == nil {
		t.Fatalf("testenv: %s: no count at %d: %q", image, off, b)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}
