// Package vmdk reads VMware virtual disks (VMDK) as extent maps.
//
// A VMDK disk is a text descriptor (embedded in a sparse file or kept in a
// file of its own) that lists extents: hosted sparse files (magic "KDMV",
// monolithicSparse, twoGbMaxExtentSparse, streamOptimized with compressed
// grains), flat files (monolithicFlat, twoGbMaxExtentFlat, ESXi vmfs/vmfsThin
// "-flat.vmdk"), zero extents, ESXi vmfsSparse ("COWD") and seSparse delta
// extents. Open resolves the extent files through the layouts.Env path
// policy and snapshot chains (parentFileNameHint) through env.OpenParent,
// checking parentCID against the parent's CID, and stacks them with
// layouts.Stack.
//
// Grain tables are read lazily on first use and kept in a bounded cache;
// compressed grains are inflated on demand into a bounded cache too, so that
// opening a disk costs time and memory in proportion to its grain directory,
// never to its size. Written from the VMware Virtual Disk Format 5.0
// specification and checked against qemu-img.
package vmdk
