package fusefs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
)

// The view keeps no extended attributes: every xattr call fails with
// ENOTSUP, the answer of a file system without them. Tools that label files
// (libvirt remembering a disk's owner in trusted.libvirt.security.*) take
// that as "not supported here" and carry on; without these methods the FUSE
// library answers ENODATA, after which libvirt tries to set the attribute,
// fails, and refuses to start the domain.

var (
	_ = (gofs.NodeGetxattrer)((*file)(nil))
	_ = (gofs.NodeSetxattrer)((*file)(nil))
	_ = (gofs.NodeListxattrer)((*file)(nil))
	_ = (gofs.NodeRemovexattrer)((*file)(nil))
	_ = (gofs.NodeGetxattrer)((*root)(nil))
	_ = (gofs.NodeSetxattrer)((*root)(nil))
	_ = (gofs.NodeListxattrer)((*root)(nil))
	_ = (gofs.NodeRemovexattrer)((*root)(nil))
)

func (f *file) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return 0, syscall.ENOTSUP
}

func (f *file) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return syscall.ENOTSUP
}

func (f *file) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return 0, syscall.ENOTSUP
}

func (f *file) Removexattr(ctx context.Context, attr string) syscall.Errno { return syscall.ENOTSUP }

func (r *root) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return 0, syscall.ENOTSUP
}

func (r *root) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return syscall.ENOTSUP
}

func (r *root) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return 0, syscall.ENOTSUP
}

func (r *root) Removexattr(ctx context.Context, attr string) syscall.Errno { return syscall.ENOTSUP }
