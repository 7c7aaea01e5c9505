package vsphere

import (
	"context"
	"os"

	"github.com/vmfs/vmfs/internal/remote"
)

// OpenRemote opens the VM a vsphere:// URL names as a remote.Store: the
// files of the datacenter's datastores, and the path of the VM's .vmx in
// them. Closing the store removes the snapshot vmfs took, if any, and
// logs out.
func OpenRemote(ctx context.Context, raw string, o remote.Options) (remote.Store, string, error) {
	pw := o.Password
	if pw == "" {
		// A caller with no --password-file of its own.
		pw = os.Getenv(PasswordEnv)
	}
	s, err := Open(ctx, raw, OpenOptions{
		Options:  Options{Password: pw, Thumbprint: o.Thumbprint, Insecure: o.Insecure, Logger: o.Logger},
		Snapshot: o.Snapshot,
	})
	if err != nil {
		return nil, "", err
	}
	return &remoteStore{s: s}, s.VMX, nil
}

// remoteStore is a Source as a remote.Store.
type remoteStore struct{ s *Source }

func (r *remoteStore) Open(ctx context.Context, p string) (remote.Object, error) {
	f, err := r.s.Store.Open(ctx, p)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (r *remoteStore) Stat(ctx context.Context, p string) (int64, error) {
	return r.s.Store.Stat(ctx, p)
}

// Display names the VM's .vmx by the VM's URL (what status shows), every
// other file as vSphere does: [ds] folder/file.
func (r *remoteStore) Display(p string) string {
	if p == r.s.VMX {
		loc := r.s.Client.loc
		loc.VM = r.s.VM.Path
		if r.s.Snapshot != "" {
			return loc.String() + " (snapshot " + r.s.Snapshot + ")"
		}
		return loc.String()
	}
	return Display(p)
}

func (r *remoteStore) Close() error { return r.s.Close(context.Background()) }
