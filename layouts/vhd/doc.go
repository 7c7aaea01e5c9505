// Package vhd reads Microsoft Virtual Hard Disk images (qemu calls the
// format "vpc"): fixed, dynamic and differencing, as described by the
// Virtual Hard Disk Image Format Specification.
//
// # Footer
//
// Every VHD ends with a 512-byte footer ("conectix"); dynamic and
// differencing disks keep a copy of it at offset 0. The footer at the end is
// used when its checksum is right; otherwise the copy at the start is used
// when it is valid and describes a dynamic or differencing disk (as the
// specification asks). With neither valid, Open fails with ErrFormat.
//
// # Virtual size
//
// The virtual size follows qemu-img, so that `qemu-img compare` and the
// disk's consumers agree on it. The creator application field decides:
// images written by Hyper-V ("win "), qemu with force_size ("qem2"),
// Disk2vhd ("d2v "), XenServer ("tap\0") and XenConverter ("CTXS") use the
// footer's current size; all others (Virtual PC "vpc ", qemu "qemu", ...)
// use the CHS geometry, cylinders*heads*sectors*512, unless the geometry is
// the maximum 65535/16/255, in which case the current size is used again.
// The size is rounded down to whole 512-byte sectors.
//
// # Dynamic and differencing disks
//
// The block allocation table is read lazily, in bounded pages, and cached;
// sector bitmaps are read on first use of a block and cached. In a dynamic
// disk, sectors whose bitmap bit is clear are holes and read as zeros; in a
// differencing disk they are holes that read from the parent. The parent is
// found through the parent locators (W2ru relative, W2ku absolute, MacX file
// URL; the name in the header as a last resort, looked up next to the
// child), opened through layouts.Env.OpenParent under its path policy, and
// must be a VHD whose unique id matches the parent id in the child's header.
package vhd
