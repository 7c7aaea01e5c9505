// Package qcow2 reads QEMU copy-on-write images (qcow2, versions 2 and 3)
// as layouts.Disk extent maps.
//
// The header, its extensions and the cluster tables are validated against
// the file size before anything is allocated. Clusters are mapped from the
// active L1/L2 tables (internal snapshots are not read: the active state is
// what the image shows), with zero clusters, extended L2 entries
// (subclusters) and external data files. Compressed clusters (deflate and
// zstd) are read through github.com/lima-vm/go-qcow2reader. Backing files
// are opened through layouts.Env.OpenParent, in any format vmfs reads, and
// combined with layouts.Stack. Encrypted images fail with
// layouts.ErrUnsupported.
package qcow2
