// Package vdi reads VirtualBox disk images (VDI, header version 1.1) as
// layouts.Disk extent maps: static (fixed) and dynamic images, with
// unallocated blocks reported as holes and zero blocks as zeros.
//
// Differencing images (VirtualBox snapshots, Snapshots/{uuid}.vdi) name
// their parent by UUID only. The parent is looked for by header among the
// *.vdi files of the image's directory and of the one above it, under the
// path policy of layouts.Env, opened through Env.OpenParent (loop and
// depth checks) and checked (UUID, disk size, modification UUID); the
// result is layouts.Stack(child, parent): free blocks read from the
// parent, zero blocks as zeros. Undo images fail with
// layouts.ErrUnsupported.
package vdi
