package session

import (
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vmfs/vmfs/internal/units"
	"github.com/vmfs/vmfs/layouts"
	"github.com/vmfs/vmfs/layouts/partscan"
	"github.com/vmfs/vmfs/translate"
)

// Pre-flight warning codes: what a migration must know of the source
// before it is moved. They are stable.
const (
	PreflightRunning    = "PREFLIGHT_RUNNING"     // VMware lock files (*.lck): the VM runs, or was not shut down
	PreflightSnapshots  = "PREFLIGHT_SNAPSHOTS"   // the source has snapshots: the current state is served
	PreflightDeltaDisk  = "PREFLIGHT_DELTA_DISK"  // a disk is a delta over parent layers
	PreflightEncrypted  = "PREFLIGHT_ENCRYPTED"   // the VM is encrypted by its hypervisor
	PreflightLUKS       = "PREFLIGHT_LUKS"        // a LUKS volume on a disk
	PreflightBitLocker  = "PREFLIGHT_BITLOCKER"   // a BitLocker volume on a disk
	PreflightNTFSDirty  = "PREFLIGHT_NTFS_DIRTY"  // an NTFS volume's dirty flag is set
	PreflightHibernated = "PREFLIGHT_HIBERNATED"  // Windows is hibernated (hiberfil.sys signature)
	PreflightTPM        = "PREFLIGHT_VTPM"        // the source has a virtual TPM
	PreflightSecureBoot = "PREFLIGHT_SECURE_BOOT" // the source boots with Secure Boot
	PreflightSpace      = "PREFLIGHT_SPACE"       // the disks' data exceeds the destination's free space
	PreflightScan       = "PREFLIGHT_SCAN"        // a disk's partitions could not be scanned
)

// preflight warns, on m, of what a migration of m must know. disks are
// m's opened disks in its order (nil for a missing one). dest, when not
// "", is the directory the disks will be written to: their allocated
// bytes are compared with its free space.
func preflight(m *translate.Machine, disks []layouts.Disk, dest string) {
	if len(m.Locks) > 0 {
		names := make([]string, len(m.Locks))
		for i, l := range m.Locks {
			names[i] = filepath.Base(l)
		}
		m.Warn(PreflightRunning, "lock files %s are beside the VM: it is running or was not shut down cleanly; shut it down before the cutover, or the disks change under the copy", strings.Join(names, ", "))
	}
	if len(m.Snapshots) > 0 {
		var cur []string
		for _, d := range m.Disks {
			cur = append(cur, filepath.Base(d.Path))
		}
		m.Warn(PreflightSnapshots, "the source has %d snapshot(s) (%s): the current state, in %s, is carried over; the snapshots are not", len(m.Snapshots), strings.Join(m.Snapshots, ", "), strings.Join(cur, ", "))
	}
	for i, d := range disks {
		if d == nil {
			continue
		}
		if n := layouts.Parents(d); n > 0 {
			m.Warn(PreflightDeltaDisk, "disk %d (%s) is a delta over %d parent layer(s): the current layer is served with its chain flattened", i, filepath.Base(m.Disks[i].Path), n)
		}
	}
	if m.Encrypted != "" {
		m.Warn(PreflightEncrypted, "the source is encrypted: %s; the target cannot open what the key seals", m.Encrypted)
	}
	for i, d := range disks {
		if d == nil {
			continue
		}
		found, err := partscan.Scan(d)
		for _, f := range found {
			where := fmt.Sprintf("partition %d", f.Partition)
			if f.Partition == 0 {
				where = "the whole disk"
			}
			switch f.Kind {
			case partscan.LUKS:
				m.Warn(PreflightLUKS, "disk %d (%s): %s is a LUKS volume: the guest asks for its passphrase (or a key it keeps elsewhere) at boot", i, filepath.Base(m.Disks[i].Path), where)
			case partscan.BitLocker:
				m.Warn(PreflightBitLocker, "disk %d (%s): %s is a BitLocker volume: without the source's TPM Windows asks for the recovery key at boot; have it at hand", i, filepath.Base(m.Disks[i].Path), where)
			case partscan.Hibernated:
				m.Warn(PreflightHibernated, "disk %d (%s): Windows on %s is hibernated (hiberfil.sys starts with a hibernation signature; Fast Startup does this at shutdown): boot it on the source and shut it down fully (shutdown /s /t 0, or Fast Startup off) before the cutover, or the resumed Windows overwrites what changed", i, filepath.Base(m.Disks[i].Path), where)
			case partscan.NTFSDirty:
				m.Warn(PreflightNTFSDirty, "disk %d (%s): the NTFS volume on %s is marked dirty: Windows was not shut down cleanly (or a chkdsk is due); boot it on the source and shut it down before the cutover", i, filepath.Base(m.Disks[i].Path), where)
			}
		}
		if err != nil {
			m.Warn(PreflightScan, "disk %d (%s): partitions not fully scanned: %v", i, filepath.Base(m.Disks[i].Path), err)
		}
	}
	if m.TPM {
		m.Warn(PreflightTPM, "the source has a virtual TPM: its state (keys, measured boot, BitLocker's protector) stays behind; the target gets none or a fresh one")
	}
	if m.SecureBoot {
		m.Warn(PreflightSecureBoot, "the source boots with Secure Boot: the target needs UEFI firmware with Secure Boot variables (OVMF's secboot code and enrolled keys)")
	}
	if dest != "" {
		spaceCheck(m, disks, dest)
	}
}

// spaceCheck warns when the disks' allocated bytes exceed the free space
// of the file system holding dest.
func spaceCheck(m *translate.Machine, disks []layouts.Disk, dest string) {
	var need int64
	for _, d := range disks {
		if d == nil {
			continue
		}
		n, err := layouts.Allocated(d)
		if err != nil {
			return
		}
		need += n
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dest, &st); err != nil {
		m.Warn(PreflightSpace, "%s: free space unknown: %v", dest, err)
		return
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if need > free {
		m.Warn(PreflightSpace, "the disks hold %s of data; %s has %s free", units.Bytes(need), dest, units.Bytes(free))
	}
}
