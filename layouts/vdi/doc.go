// Package vdi reads VirtualBox disk images (VDI, header version 1.1) as
// layouts.Disk extent maps: static (fixed) and dynamic images, with
// unallocated blocks reported as holes and zero blocks as zeros.
// Differencing and undo images, whose parent is found by UUID in a
// VirtualBox registry, fail with layouts.ErrUnsupported.
package vdi
