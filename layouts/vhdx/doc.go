// Package vhdx reads Microsoft VHDX images (Hyper-V's format, version 1 of
// the VHDX Format Specification): fixed, dynamic and differencing.
//
// Open checks the "vhdxfile" identifier, picks the valid header (CRC-32C)
// with the higher sequence number, reads the region table (the second copy
// when the first is corrupt), and the metadata items it needs: file
// parameters (block size, leave-blocks-allocated, has-parent), virtual disk
// size, logical and physical sector sizes and, for differencing disks, the
// parent locator. Unknown regions or metadata items marked required are
// refused as unsupported.
//
// # Log
//
// A header with a non-zero log GUID whose log region holds an entry of that
// GUID (with a valid checksum) means the image was not closed cleanly and
// its log must be replayed before its metadata can be trusted. Such an image
// is refused with ErrUnsupported; replaying it (Hyper-V, or
// `qemu-img check -r all`) makes it readable. A non-zero log GUID with no
// matching entry is read as is, as qemu does.
//
// # Blocks
//
// The block allocation table is read lazily, in bounded pages, and cached,
// so that opening a 2 TiB disk reads a few KiB. Payload block states map to
// extents as follows: NOT_PRESENT is a hole (read from the parent in a
// differencing disk, zeros otherwise); ZERO, UNMAPPED and UNDEFINED are
// Zero (the specification leaves the contents of the last two undefined;
// zeros are what qemu returns); FULLY_PRESENT is Data; PARTIALLY_PRESENT
// (differencing disks only) is Data for the sectors whose bit is set in the
// chunk's sector bitmap block and a hole for the others. Sector bitmaps are
// read per block on first use and cached.
//
// # Parent
//
// The parent of a differencing disk is named by the parent locator's
// relative_path, then absolute_win32_path (whose file name is also tried
// next to the child, as a Windows path cannot exist here), opened through
// layouts.Env.OpenParent under its path policy, and must be a VHDX whose
// data write GUID equals parent_linkage (or parent_linkage2).
package vhdx
