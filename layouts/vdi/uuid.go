package vdi

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/vmfs/vmfs/layouts"
)

// ImageUUID returns the image UUID of the VDI at r (a synthesized image or
// a VDI file), in canonical lowercase form: what a VirtualBox media
// registry must name for VirtualBox to accept the image. The header stores
// it as VirtualBox does, with the first three fields little-endian.
func ImageUUID(r io.ReaderAt) (string, error) {
	var h [0x1a8]byte
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return "", fmt.Errorf("vdi: reading header: %w", err)
	}
	if binary.LittleEndian.Uint32(h[0x40:]) != 0xbeda107f {
		return "", fmt.Errorf("vdi: no VDI signature: %w", layouts.ErrWrongType)
	}
	u := h[0x188:0x198]
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(u[0:4]), binary.LittleEndian.Uint16(u[4:6]), binary.LittleEndian.Uint16(u[6:8]), u[8:10], u[10:16]), nil
}
