// Package vspheretest runs a vSphere simulator (govmomi's vcsim) on
// loopback for the tests, and puts test VMs on its datastore the way a
// user's VM sits on ESXi: files uploaded through the datastore file API,
// then registered.
package vspheretest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// The simulator's login and inventory.
const (
	User       = "vmfs-test"
	Password   = "Secr3t-pw-for-vcsim"
	Datacenter = "DC0"
	Datastore  = "LocalDS_0"
)

// Server is a running simulator.
type Server struct {
	// Host is host:port on loopback.
	Host string
	// Thumbprint is the SHA-256 thumbprint of its self-signed certificate.
	Thumbprint string

	srv    *simulator.Server
	client *govmomi.Client
	model  *simulator.Model
}

// Start starts a vCenter simulator (one datacenter, DC0, with the
// datastore LocalDS_0 and one VM of its own, powered on), stopped at the
// end of the test. The simulator keeps its inventory in one global: one
// Server at a time per process.
func Start(t testing.TB) *Server {
	t.Helper()
	model := simulator.VPX()
	model.Machine = 1
	model.ClusterHost = 1
	model.Host = 0
	if err := model.Create(); err != nil {
		t.Fatalf("vcsim: %v", err)
	}
	model.Service.TLS = new(tls.Config)
	model.Service.Listen = &url.URL{Host: "127.0.0.1:0", User: url.UserPassword(User, Password)}
	srv := model.Service.NewServer()
	s := &Server{Host: srv.URL.Host, srv: srv, model: model}
	t.Cleanup(func() {
		if s.client != nil {
			_ = s.client.Logout(context.Background())
		}
		srv.Close()
		model.Remove()
	})
	s.Thumbprint = thumbprint(srv)
	u := *srv.URL
	u.User = url.UserPassword(User, Password)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := govmomi.NewClient(ctx, &u, true)
	if err != nil {
		t.Fatalf("vcsim: login: %v", err)
	}
	s.client = c
	return s
}

func thumbprint(srv *simulator.Server) string {
	cert := srv.Certificate()
	return certThumbprint(cert.Raw)
}

// URL is the vsphere:// URL of path under the datacenter ("" for the
// datacenter itself, "vm/NAME" for a VM).
func (s *Server) URL(path string) string {
	u := "vsphere://" + User + "@" + s.Host + "/" + Datacenter
	if path != "" {
		u += "/" + path
	}
	return u
}

// Disk is one file of a test VM.
type Disk struct {
	Name  string // file name in the VM's folder
	Local string // the file on this host
}

// AddVM uploads the files (every file of dir) into the datastore folder
// name, registers name.vmx as the VM name, and gives it the disks
// (files of dir, in order, as scsi0:0, scsi0:1 ...), as an ESXi host
// lists a VM's disks. It returns the VM's folder on the simulator's
// datastore, on this host.
func (s *Server) AddVM(t testing.TB, name, dir string, disks []string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := find.NewFinder(s.client.Client, false)
	dc, err := f.Datacenter(ctx, Datacenter)
	if err != nil {
		t.Fatal(err)
	}
	f.SetDatacenter(dc)
	ds, err := f.Datastore(ctx, Datastore)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := []string{name + ".nvram", "vmware.log"}
	for _, e := range entries {
		if e.Type().IsRegular() {
			if err := ds.UploadFile(ctx, filepath.Join(dir, e.Name()), name+"/"+e.Name(), nil); err != nil {
				t.Fatalf("upload %s: %v", e.Name(), err)
			}
		}
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			continue
		}
		if err := ds.UploadFile(ctx, empty, name+"/"+f, nil); err != nil {
			t.Fatalf("upload %s: %v", f, err)
		}
	}
	folders, err := dc.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := f.DefaultResourcePool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	task, err := folders.VmFolder.RegisterVM(ctx, fmt.Sprintf("[%s] %s/%s.vmx", Datastore, name, name), name, false, pool, nil)
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	res, err := task.WaitForResult(ctx)
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	s.setDisks(t, res.Result.(types.ManagedObjectReference), name, disks)
	var dsmo mo.Datastore
	if err := ds.Properties(ctx, ds.Reference(), []string{"info"}, &dsmo); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(strings.TrimPrefix(dsmo.Info.GetDatastoreInfo().Url, "file://"), name)
}

// setDisks gives the registered VM a pvscsi controller and the disks, in
// the simulator's own inventory: vcsim reads no .vmx, and attaches only
// disks with a -flat file through its API.
func (s *Server) setDisks(t testing.TB, ref types.ManagedObjectReference, name string, disks []string) {
	t.Helper()
	vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		t.Fatalf("vcsim: %s is no VM", ref)
	}
	const ctrlKey = 1000
	devs := []types.BaseVirtualDevice{&types.ParaVirtualSCSIController{VirtualSCSIController: types.VirtualSCSIController{
		VirtualController: types.VirtualController{VirtualDevice: types.VirtualDevice{Key: ctrlKey}, BusNumber: 0},
	}}}
	for i, d := range disks {
		unit := int32(i)
		devs = append(devs, &types.VirtualDisk{
			VirtualDevice: types.VirtualDevice{
				Key:           int32(2000 + i),
				ControllerKey: ctrlKey,
				UnitNumber:    &unit,
				DeviceInfo:    &types.Description{Label: fmt.Sprintf("Hard disk %d", i+1)},
				Backing: &types.VirtualDiskFlatVer2BackingInfo{VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{
					FileName: fmt.Sprintf("[%s] %s/%s", Datastore, name, d),
				}},
			},
			CapacityInKB: 1024,
		})
	}
	vm.Config.Hardware.Device = append(vm.Config.Hardware.Device, devs...)
}

// RequireSession makes the simulator's file API check, as ESXi does,
// that a request to the VM folder name carries a live session cookie
// (vcsim itself serves any request): 401 Unauthorized otherwise.
func (s *Server) RequireSession(t testing.TB, name string) {
	t.Helper()
	svc := s.model.Service
	svc.ServeMux.HandleFunc("/folder/"+name+"/", func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(soap.SessionCookieName)
		if err != nil || !s.sessionActive(r.Context(), c.Value) {
			http.Error(w, "no session", http.StatusUnauthorized)
			return
		}
		svc.ServeDatastore(w, r)
	})
}

func (s *Server) sessionActive(ctx context.Context, id string) bool {
	res, err := methods.SessionIsActive(ctx, s.client.Client, &types.SessionIsActive{
		This: *s.client.Client.ServiceContent.SessionManager, SessionID: id, UserName: User,
	})
	return err == nil && res.Returnval
}

// ExpireSessions ends every session but the test's own, as a host does
// when they idle too long.
func (s *Server) ExpireSessions(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var sm mo.SessionManager
	ref := *s.client.Client.ServiceContent.SessionManager
	if err := s.client.PropertyCollector().RetrieveOne(ctx, ref, []string{"sessionList", "currentSession"}, &sm); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, u := range sm.SessionList {
		if sm.CurrentSession == nil || u.Key != sm.CurrentSession.Key {
			ids = append(ids, u.Key)
		}
	}
	if len(ids) == 0 {
		t.Fatal("vcsim: no session to expire")
	}
	if _, err := methods.TerminateSession(ctx, s.client.Client, &types.TerminateSession{This: ref, SessionId: ids}); err != nil {
		t.Fatalf("vcsim: ending sessions: %v", err)
	}
}

// PowerOn powers the VM on.
func (s *Server) PowerOn(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	vm := s.vm(ctx, t, name)
	task, err := vm.PowerOn(ctx)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Fatalf("power on %s: %v", name, err)
	}
}

// Snapshots are the names of the VM's snapshots.
func (s *Server) Snapshots(t testing.TB, name string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var m mo.VirtualMachine
	vm := s.vm(ctx, t, name)
	if err := vm.Properties(ctx, vm.Reference(), []string{"snapshot"}, &m); err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func([]types.VirtualMachineSnapshotTree)
	walk = func(l []types.VirtualMachineSnapshotTree) {
		for _, s := range l {
			out = append(out, s.Name)
			walk(s.ChildSnapshotList)
		}
	}
	if m.Snapshot != nil {
		walk(m.Snapshot.RootSnapshotList)
	}
	return out
}

func (s *Server) vm(ctx context.Context, t testing.TB, name string) *object.VirtualMachine {
	t.Helper()
	f := find.NewFinder(s.client.Client, true)
	vm, err := f.VirtualMachine(ctx, "/"+Datacenter+"/vm/"+name)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

// TestVM writes a VM into a new directory: testvm.vmx with three disks, a
// monolithicSparse VMDK (disk0), a monolithicFlat one (disk1) and a
// sparse delta (disk2) on a sparse base (base.vmdk), each holding
// patterns; sizeMiB (8 or more) is the size of each disk. It needs qemu-img and
// qemu-io.
func TestVM(t testing.TB, sizeMiB int) (dir string, disks []string) {
	t.Helper()
	for _, c := range []string{"qemu-img", "qemu-io"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("%s not installed", c)
		}
	}
	if sizeMiB < 8 {
		t.Fatalf("TestVM: %d MiB: the patterns need 8", sizeMiB)
	}
	dir = t.TempDir()
	size := fmt.Sprintf("%dM", sizeMiB)
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	half := sizeMiB / 2
	run("qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat=monolithicSparse", "disk0.vmdk", size)
	run("qemu-io", "-f", "vmdk", "-c", "write -q -P 0x11 0 1M", "-c", fmt.Sprintf("write -q -P 0x22 %dM 3M", half), "disk0.vmdk")
	run("qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", "disk1.vmdk", size)
	run("qemu-io", "-f", "vmdk", "-c", "write -q -P 0x33 1M 2M", "disk1.vmdk")
	run("qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat=monolithicSparse", "base.vmdk", size)
	run("qemu-io", "-f", "vmdk", "-c", "write -q -P 0x44 0 4M", "base.vmdk")
	run("qemu-img", "create", "-q", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk", "disk2.vmdk")
	run("qemu-io", "-f", "vmdk", "-c", "write -q -P 0x55 2M 1M", "-c", fmt.Sprintf("write -q -P 0x66 %dM 64k", half), "disk2.vmdk")
	vmx := `.encoding = "UTF-8"
config.version = "8"
virtualHW.version = "14"
displayName = "testvm"
guestOS = "other-64"
memsize = "256"
numvcpus = "1"
scsi0.present = "TRUE"
scsi0.virtualDev = "pvscsi"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "disk0.vmdk"
scsi0:1.present = "TRUE"
scsi0:1.fileName = "disk1.vmdk"
scsi0:2.present = "TRUE"
scsi0:2.fileName = "disk2.vmdk"
`
	if err := os.WriteFile(filepath.Join(dir, "testvm.vmx"), []byte(vmx), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, []string{"disk0.vmdk", "disk1.vmdk", "disk2.vmdk"}
}

// Proxy is a TCP relay to the simulator that a test can stop and start
// again on the same port: the host going away mid-read and coming back.
type Proxy struct {
	Addr   string
	target string
	ln     net.Listener
	stop   chan struct{}
	// relays counts the accept loop and the relayed connections, so that
	// Down returns once every connection is closed.
	relays sync.WaitGroup
}

// StartProxy relays Addr to s, until the end of the test.
func (s *Server) StartProxy(t testing.TB) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: s.Host}
	p.serve(ln)
	t.Cleanup(p.Down)
	return p
}

func (p *Proxy) serve(ln net.Listener) {
	p.ln, p.stop = ln, make(chan struct{})
	stop := p.stop
	p.relays.Add(1)
	go func() {
		defer p.relays.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.relays.Add(1)
			go func() {
				defer p.relays.Done()
				relay(c, up, stop)
			}()
		}
	}()
}

func relay(a, b net.Conn, stop chan struct{}) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	select {
	case <-done:
	case <-stop:
	}
	a.Close()
	b.Close()
}

// Down closes the listener and every relayed connection.
func (p *Proxy) Down() {
	if p.ln == nil {
		return
	}
	p.ln.Close()
	close(p.stop)
	p.ln = nil
	p.relays.Wait()
}

// Up listens again on the same address.
func (p *Proxy) Up(t testing.TB) {
	t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", p.Addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("proxy up again on %s: %v", p.Addr, err)
	}
	p.serve(ln)
}
