// Package live moves running libvirt domains off a vmfs mount: every disk
// a domain reads from the mount is copied into a directory by libvirt's
// block copy (QEMU's mirror: the guest's writes during the copy land in
// the copy too), the domain is pivoted onto the copies once every disk is
// in sync, its persistent definition is pointed at them, and the mount is
// released. The guest never stops (with Verify it pauses while the copies
// are compared with the mount). Any failure before the pivot leaves the
// guest running on the mount, with no file under a final name in the
// directory. docs/live.md has the design and the failure cases.
package live

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmfs/vmfs/internal/units"
)

// Options of a cutover.
type Options struct {
	// Mountpoint is the vmfs mount the domains run from; Dest the
	// directory the disks are copied into (created when missing).
	Mountpoint, Dest string
	// Domain picks one domain by name; "" takes every running domain
	// that uses a file of the mount.
	Domain string
	// Format of the copies, qcow2 or raw; "" keeps each disk's.
	Format string
	// Verify pauses the guests once the copies are in sync, pivots,
	// compares every copy with its file in the mount (qemu-img compare)
	// and resumes them.
	Verify bool
	// Force replaces files of the same names in Dest.
	Force bool
	// Bandwidth limits each disk's copy, in MiB/s (0: no limit).
	Bandwidth int
	// Poll is how often the jobs are asked for their progress (0: 250ms).
	Poll time.Duration
	// Event receives what happens, in order (nil: dropped).
	Event func(Event)
	// Release ends the mount once no domain uses it any more (nil: the
	// mount is left).
	Release func(mountpoint string) error
}

// The kinds of Event.
const (
	EventWarning  = "warning"       // Message
	EventStart    = "copy_start"    // a disk's copy job started: Source, Dest, Format
	EventProgress = "copy_progress" // Done, Total, Ready
	EventPivot    = "pivot"         // a disk now runs on Dest
	EventPause    = "pause"         // the domain is paused (Verify)
	EventResume   = "resume"        // and runs again
	EventRelease  = "release"       // the mount is released; Message says how it went when not
)

// Event is one step of a cutover.
type Event struct {
	Kind         string
	Domain, Disk string
	Source, Dest string
	Format       string
	Done, Total  int64
	Ready        bool
	Message      string
}

// DiskSummary is one disk moved.
type DiskSummary struct {
	Domain, Disk string
	Source, Dest string
	Format       string
	Size         int64 // bytes the job copied (the disk's virtual size and what was rewritten)
	Allocated    int64 // bytes the copy takes on disk
}

// Summary of a cutover.
type Summary struct {
	Domains  []string
	Disks    []DiskSummary
	Duration time.Duration
	Verified bool
	// Paused is how long the guests were paused (Verify; 0 otherwise).
	Paused time.Duration
	// Definitions are the domain XML files written into Dest.
	Definitions []string
	// Released says the mount was released; ReleaseErr why not, when
	// that was tried and failed.
	Released   bool
	ReleaseErr error
}

const partialSuffix = ".vmfs-partial"

// job is the copy of one disk.
type job struct {
	dom     string
	disk    disk
	final   string // the copy's name in Dest
	partial string // its name while it is incomplete
	format  string
	started bool // the copy job was started by this run
	atFinal bool // the copy is under its final name
	info    jobInfo
}

type run struct {
	o     Options
	v     virsh
	mnts  []string
	jobs  []*job
	doms  []string
	start time.Time
	// transient are the domains without a persistent definition: only
	// their live XML is checked and written into Dest.
	transient map[string]bool
}

func (r *run) emit(e Event) {
	if r.o.Event != nil {
		r.o.Event(e)
	}
}

// Run moves the running domains that use files of the mount onto copies
// in Dest.
func Run(ctx context.Context, o Options) (Summary, error) {
	r := &run{o: o, start: time.Now()}
	if r.o.Poll <= 0 {
		r.o.Poll = 250 * time.Millisecond
	}
	switch o.Format {
	case "", "qcow2", "raw":
	default:
		return Summary{}, fmt.Errorf("--live copies disks as qcow2 or raw, not %s", o.Format)
	}
	v, err := newVirsh()
	if err != nil {
		return Summary{}, err
	}
	r.v = v
	if err := r.prepare(ctx); err != nil {
		return Summary{}, err
	}
	if err := r.copy(ctx); err != nil {
		r.cleanup()
		return Summary{}, err
	}
	return r.cutover()
}

// prepare finds the domains and their disks, checks Dest and clears what
// an earlier, interrupted run left.
func (r *run) prepare(ctx context.Context) error {
	mnt := filepath.Clean(r.o.Mountpoint)
	r.mnts = []string{mnt}
	if real, err := filepath.EvalSymlinks(mnt); err == nil && real != mnt {
		r.mnts = append(r.mnts, real)
	}
	dest := filepath.Clean(r.o.Dest)
	for _, m := range r.mnts {
		if dest == m || within(dest, m) {
			return fmt.Errorf("%s: DESTDIR is inside the mount %s", dest, mnt)
		}
	}
	doms, err := r.domains(ctx)
	if err != nil {
		return err
	}
	if len(doms) == 0 {
		if r.o.Domain != "" {
			return fmt.Errorf("%s: domain %s is not running, or uses no file of the mount", mnt, r.o.Domain)
		}
		return fmt.Errorf("%s: no running libvirt domain uses a file of the mount", mnt)
	}
	// DESTDIR is made once there is something to copy into it: a run that
	// finds nothing to move leaves nothing behind.
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return fmt.Errorf("%s: %w", dest, err)
	}
	names := map[string]string{}
	r.transient = map[string]bool{}
	for _, d := range doms {
		r.doms = append(r.doms, d.name)
		info, err := r.v.run(ctx, "dominfo", d.name)
		if err != nil {
			return fmt.Errorf("domain %s: %w", d.name, err)
		}
		r.transient[d.name] = strings.Contains(info, "Persistent:     no")
		if err := r.visible(d.name, dest); err != nil {
			return err
		}
		for _, k := range d.disks {
			format := r.o.Format
			if format == "" {
				format = k.Format
			}
			base := strings.TrimSuffix(filepath.Base(k.Source), filepath.Ext(k.Source)) + "." + format
			if other, dup := names[base]; dup {
				return fmt.Errorf("%s: %s and %s would both be copied to %s", dest, other, k.Source, base)
			}
			names[base] = k.Source
			j := &job{dom: d.name, disk: k, format: format,
				final: filepath.Join(dest, base), partial: filepath.Join(dest, "."+base+partialSuffix)}
			if k.Mirror != "" {
				if err := r.clearStale(ctx, j); err != nil {
					return err
				}
			}
			r.jobs = append(r.jobs, j)
		}
	}
	for _, j := range r.jobs {
		os.Remove(j.partial) // an earlier run's, never a final name
		if _, err := os.Lstat(j.final); err == nil {
			if !r.o.Force {
				return fmt.Errorf("%s: exists (use --force to replace it)", j.final)
			}
			if err := os.Remove(j.final); err != nil {
				return fmt.Errorf("%s: %w", j.final, err)
			}
		}
	}
	for _, name := range r.doms {
		p := filepath.Join(dest, name+".xml")
		if _, err := os.Lstat(p); err == nil && !r.o.Force {
			return fmt.Errorf("%s: exists (use --force to replace it)", p)
		}
	}
	r.spaceWarning(dest)
	return nil
}

type domain struct {
	name  string
	disks []disk
}

// domains lists the running (or paused) domains with disks in the mount.
func (r *run) domains(ctx context.Context) ([]domain, error) {
	out, err := r.v.run(ctx, "list", "--name")
	if err != nil {
		return nil, err
	}
	var doms []domain
	for _, name := range strings.Split(out, "\n") {
		name = strings.TrimSpace(name)
		if name == "" || r.o.Domain != "" && name != r.o.Domain {
			continue
		}
		x, err := r.v.run(ctx, "dumpxml", name)
		if err != nil {
			if strings.Contains(err.Error(), "failed to get domain") {
				continue // gone meanwhile
			}
			return nil, err
		}
		n, disks, err := mountDisks(x, r.mnts)
		if err != nil {
			return nil, err
		}
		if len(disks) > 0 {
			doms = append(doms, domain{name: n, disks: disks})
		}
	}
	return doms, nil
}

// clearStale ends the copy job an earlier run of this cutover left on a
// disk (vmfs was killed, or libvirt went away): its destination is this
// run's file. A job of anything else is left alone.
func (r *run) clearStale(ctx context.Context, j *job) error {
	if j.disk.Mirror != j.final {
		return fmt.Errorf("domain %s: disk %s has a block job already (a copy to %s): end it with 'virsh blockjob %s %s --abort'",
			j.dom, j.disk.Target, j.disk.Mirror, j.dom, j.disk.Target)
	}
	if _, err := r.v.run(ctx, "blockjob", j.dom, j.disk.Target, "--abort"); err != nil {
		return fmt.Errorf("domain %s: ending the copy job of disk %s an earlier run left: %w", j.dom, j.disk.Target, err)
	}
	os.Remove(j.final)
	os.Remove(j.partial)
	return nil
}

// visible checks that QEMU, which runs in a mount namespace of its own,
// sees dest as this process does: a file system mounted after the domain
// started stays outside that namespace.
func (r *run) visible(dom, dest string) error {
	b, err := os.ReadFile(filepath.Join("/run/libvirt/qemu", dom+".pid"))
	if err != nil {
		return nil // not a local QEMU driver, or not root: libvirt will say
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return nil
	}
	mine, err := os.Stat(dest)
	if err != nil {
		return err
	}
	theirs, err := os.Stat(fmt.Sprintf("/proc/%d/root%s", pid, dest))
	if err != nil && errors.Is(err, os.ErrPermission) {
		return nil
	}
	if err != nil || !os.SameFile(mine, theirs) {
		return fmt.Errorf("%s: domain %s's QEMU (pid %d) does not see this directory there: a file system mounted after the domain started stays out of its mount namespace; choose a DESTDIR on a file system mounted before", dest, dom, pid)
	}
	return nil
}

// spaceWarning warns when the disks' allocated bytes exceed Dest's free
// space. The copy may still fit (zeros are not written), and the guest
// may write more meanwhile: a full Dest fails the job, which is handled.
func (r *run) spaceWarning(dest string) {
	var need int64
	for _, j := range r.jobs {
		var st syscall.Stat_t
		if syscall.Stat(j.disk.Source, &st) == nil {
			need += st.Blocks * 512
		}
	}
	var fs unix.Statfs_t
	if unix.Statfs(dest, &fs) != nil {
		return
	}
	if free := int64(fs.Bavail) * fs.Bsize; need > free {
		r.emit(Event{Kind: EventWarning, Message: fmt.Sprintf("PREFLIGHT_SPACE: the disks hold %s and %s has %s free", units.Bytes(need), dest, units.Bytes(free))})
	}
}

// copy starts a copy job per disk and waits until every one is in sync.
func (r *run) copy(ctx context.Context) error {
	for _, j := range r.jobs {
		if err := ctx.Err(); err != nil {
			return errInterrupted
		}
		args := []string{"blockcopy", j.dom, j.disk.Target, "--dest", j.final, "--format", j.format,
			"--transient-job", "--synchronous-writes"}
		if r.o.Bandwidth > 0 {
			args = append(args, "--bandwidth", strconv.Itoa(r.o.Bandwidth))
		}
		if _, err := r.v.run(context.Background(), args...); err != nil {
			os.Remove(j.final)
			return fmt.Errorf("domain %s: copying disk %s to %s: %w", j.dom, j.disk.Target, j.final, err)
		}
		j.started, j.atFinal = true, true
		// QEMU holds the file open: until the pivot it goes by a name
		// that no one takes for a complete copy.
		if err := os.Rename(j.final, j.partial); err != nil {
			return fmt.Errorf("domain %s: %w", j.dom, err)
		}
		j.atFinal = false
		r.emit(Event{Kind: EventStart, Domain: j.dom, Disk: j.disk.Target, Source: j.disk.Source, Dest: j.final, Format: j.format})
	}
	tick := time.NewTicker(r.o.Poll)
	defer tick.Stop()
	for {
		all := true
		for _, j := range r.jobs {
			if ctx.Err() != nil {
				return errInterrupted
			}
			info, err := r.v.jobInfo(ctx, j.dom, j.disk.Target)
			if ctx.Err() != nil {
				return errInterrupted
			}
			if err != nil {
				return r.lost(j, err)
			}
			if !info.Active {
				return r.ended(j)
			}
			j.info = info
			r.emit(Event{Kind: EventProgress, Domain: j.dom, Disk: j.disk.Target, Done: info.Cur, Total: info.End, Ready: info.Ready()})
			all = all && info.Ready()
		}
		if all {
			ok, err := r.allMirroring(ctx)
			if ctx.Err() != nil {
				return errInterrupted
			}
			if err != nil {
				return r.lost(r.jobs[0], err)
			}
			if ok {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return errInterrupted
		case <-tick.C:
		}
	}
}

var errInterrupted = errors.New("interrupted")

// allMirroring confirms from the live XML that every job is in its
// mirroring phase.
func (r *run) allMirroring(ctx context.Context) (bool, error) {
	for _, dom := range r.doms {
		x, err := r.v.run(ctx, "dumpxml", dom)
		if err != nil {
			return false, err
		}
		var targets []string
		for _, j := range r.jobs {
			if j.dom == dom {
				targets = append(targets, j.disk.Target)
			}
		}
		ok, err := mirrorsReady(x, targets)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func (r *run) lost(j *job, err error) error {
	if errors.Is(err, ErrLibvirtLost) {
		return fmt.Errorf("domain %s: libvirt stopped answering during the copy (%v): the guest runs on the mount; run again once libvirt answers", j.dom, err)
	}
	return fmt.Errorf("domain %s: disk %s: %w", j.dom, j.disk.Target, err)
}

// ended explains a copy job that is gone before it was in sync.
func (r *run) ended(j *job) error {
	var fs unix.Statfs_t
	if unix.Statfs(filepath.Dir(j.final), &fs) == nil {
		free := int64(fs.Bavail) * fs.Bsize
		total := int64(fs.Blocks) * fs.Bsize
		if free < 1<<20 || free < total/100 {
			return fmt.Errorf("domain %s: copying disk %s failed: no space left on %s (%s free)", j.dom, j.disk.Target, filepath.Dir(j.final), units.Bytes(free))
		}
	}
	return fmt.Errorf("domain %s: the copy job of disk %s ended before it was in sync (aborted with 'virsh blockjob --abort', or failed: see /var/log/libvirt/qemu/%s.log)", j.dom, j.disk.Target, j.dom)
}

// cleanup ends the jobs this run started and removes their files, after
// a failure before the pivot: the guests keep running on the mount.
func (r *run) cleanup() {
	for _, j := range r.jobs {
		if !j.started {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if info, err := r.v.jobInfo(ctx, j.dom, j.disk.Target); err == nil && info.Active {
			r.v.run(ctx, "blockjob", j.dom, j.disk.Target, "--abort")
		}
		cancel()
		// Where libvirt is gone the job writes on into the unlinked
		// file; the next run ends it.
		os.Remove(j.partial)
		os.Remove(j.final)
	}
}

// cutover pivots every disk (all are in sync), verifies when asked,
// rewrites the persistent definitions and releases the mount.
func (r *run) cutover() (Summary, error) {
	ctx := context.Background() // past this point nothing is interrupted half-way
	sum := Summary{Domains: r.doms}
	inactive := map[string]string{}
	for _, dom := range r.doms {
		if r.transient[dom] {
			continue
		}
		x, err := r.v.run(ctx, "dumpxml", "--inactive", dom)
		if err != nil {
			r.cleanup()
			return sum, fmt.Errorf("domain %s: %w", dom, err)
		}
		inactive[dom] = x
	}
	var paused []string
	var pauseStart time.Time
	resume := func() {
		for _, dom := range paused {
			if _, err := r.v.run(ctx, "resume", dom); err == nil {
				r.emit(Event{Kind: EventResume, Domain: dom})
			}
		}
		if len(paused) > 0 {
			sum.Paused = time.Since(pauseStart)
		}
		paused = nil
	}
	if r.o.Verify {
		pauseStart = time.Now()
		for _, dom := range r.doms {
			st, err := r.v.run(ctx, "domstate", dom)
			if err != nil {
				resume()
				r.cleanup()
				return sum, fmt.Errorf("domain %s: %w", dom, err)
			}
			if strings.TrimSpace(st) != "running" {
				continue // paused already, and left so
			}
			if _, err := r.v.run(ctx, "suspend", dom); err != nil {
				resume()
				r.cleanup()
				return sum, fmt.Errorf("domain %s: pausing for --verify: %w", dom, err)
			}
			paused = append(paused, dom)
			r.emit(Event{Kind: EventPause, Domain: dom})
		}
	}
	// Final names first: the pivot makes libvirt name the copy by the
	// path the job was started with.
	for _, j := range r.jobs {
		if err := unix.Renameat2(unix.AT_FDCWD, j.partial, unix.AT_FDCWD, j.final, unix.RENAME_NOREPLACE); err != nil {
			resume()
			r.cleanup()
			return sum, fmt.Errorf("%s: %w", j.final, err)
		}
		j.atFinal = true
	}
	var pivoted []*job
	for _, j := range r.jobs {
		if _, err := r.v.run(ctx, "blockjob", j.dom, j.disk.Target, "--pivot"); err != nil {
			resume()
			if len(pivoted) == 0 {
				r.cleanup()
				return sum, fmt.Errorf("domain %s: pivoting disk %s: %w; the guest runs on the mount", j.dom, j.disk.Target, err)
			}
			var rest []*job
			for _, k := range r.jobs {
				if !contains(pivoted, k) {
					rest = append(rest, k)
				}
			}
			r.jobs = rest
			r.cleanup()
			return sum, fmt.Errorf("domain %s: pivoting disk %s: %w; %s run on their copies, the others on the mount, which stays", j.dom, j.disk.Target, err, names(pivoted))
		}
		pivoted = append(pivoted, j)
		r.emit(Event{Kind: EventPivot, Domain: j.dom, Disk: j.disk.Target, Source: j.disk.Source, Dest: j.final, Format: j.format})
	}
	if r.o.Verify {
		for _, j := range r.jobs {
			if err := compare(j.disk.Source, j.disk.Format, j.final, j.format); err != nil {
				// Keep the guest as it is, and the next boot on the
				// mount: the user decides.
				for dom, x := range inactive {
					r.define(dom, x)
				}
				return sum, fmt.Errorf("domain %s: --verify: disk %s: %v; the guest is left paused on its copies and its definition names the mount ('virsh resume %s' runs it on the copies)", j.dom, j.disk.Target, err, j.dom)
			}
		}
		sum.Verified = true
		resume()
	}
	moved := map[string]map[string]movedDisk{}
	for _, j := range r.jobs {
		if moved[j.dom] == nil {
			moved[j.dom] = map[string]movedDisk{}
		}
		moved[j.dom][j.disk.Target] = movedDisk{From: j.disk.Source, To: j.final, Format: j.format}
	}
	for _, dom := range r.doms {
		def, err := r.persist(ctx, dom, moved[dom])
		if err != nil {
			return sum, err
		}
		sum.Definitions = append(sum.Definitions, def)
	}
	for _, j := range r.jobs {
		d := DiskSummary{Domain: j.dom, Disk: j.disk.Target, Source: j.disk.Source, Dest: j.final, Format: j.format, Size: j.info.End}
		var st syscall.Stat_t
		if syscall.Stat(j.final, &st) == nil {
			d.Allocated = st.Blocks * 512
		}
		sum.Disks = append(sum.Disks, d)
	}
	if r.o.Release != nil {
		users, err := r.users(ctx)
		switch {
		case err != nil:
			sum.ReleaseErr = err
		case len(users) > 0:
			sum.ReleaseErr = fmt.Errorf("domain %s still uses files of the mount", strings.Join(users, ", "))
		default:
			// QEMU's last close of a disk reaches the mount a moment
			// after the pivot: a busy mount is asked again for a while.
			for try := 0; ; try++ {
				sum.ReleaseErr = r.o.Release(r.mnts[0])
				if sum.ReleaseErr == nil || try == 20 || !strings.Contains(sum.ReleaseErr.Error(), "busy") {
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
			sum.Released = sum.ReleaseErr == nil
		}
		msg := ""
		if sum.ReleaseErr != nil {
			msg = sum.ReleaseErr.Error()
		}
		r.emit(Event{Kind: EventRelease, Message: msg})
	}
	sum.Duration = time.Since(r.start)
	return sum, nil
}

func contains(js []*job, j *job) bool {
	for _, k := range js {
		if k == j {
			return true
		}
	}
	return false
}

func names(js []*job) string {
	var s []string
	for _, j := range js {
		s = append(s, j.dom+" "+j.disk.Target)
	}
	return strings.Join(s, ", ")
}

// persist points the domain's persistent definition at the copies (libvirt
// may have done so at the pivot), checks that neither it nor the live
// definition names a file of the mount any more, and writes it into Dest
// as <domain>.xml. It returns that file.
func (r *run) persist(ctx context.Context, dom string, moved map[string]movedDisk) (string, error) {
	dump := func(args ...string) (string, error) {
		x, err := r.v.run(ctx, append([]string{"dumpxml"}, append(args, dom)...)...)
		if err != nil {
			return "", fmt.Errorf("domain %s: %w", dom, err)
		}
		return x, nil
	}
	check := func(x, which string) error {
		srcs, err := diskSources(x)
		if err != nil {
			return fmt.Errorf("domain %s: %w", dom, err)
		}
		for target, src := range srcs {
			for _, m := range r.mnts {
				if within(src, m) {
					return fmt.Errorf("domain %s: its %s definition still names %s for disk %s", dom, which, src, target)
				}
			}
		}
		return nil
	}
	def, err := dump()
	if err != nil {
		return "", err
	}
	if err := check(def, "live"); err != nil {
		return "", err
	}
	if !r.transient[dom] {
		x, err := dump("--inactive")
		if err != nil {
			return "", err
		}
		nx, changed, err := rewriteDisks(x, moved)
		if err != nil {
			return "", fmt.Errorf("domain %s: %w", dom, err)
		}
		if changed {
			if err := r.define(dom, nx); err != nil {
				return "", err
			}
			if x, err = dump("--inactive"); err != nil {
				return "", err
			}
		}
		if err := check(x, "persistent"); err != nil {
			return "", err
		}
		def = x
	}
	p := filepath.Join(filepath.Dir(r.jobs[0].final), dom+".xml")
	tmp := filepath.Join(filepath.Dir(p), "."+dom+".xml"+partialSuffix)
	if err := os.WriteFile(tmp, []byte(def), 0o644); err != nil {
		return "", fmt.Errorf("domain %s: %w", dom, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("domain %s: %w", dom, err)
	}
	return p, nil
}

// define makes x the persistent definition of dom.
func (r *run) define(dom, x string) error {
	f, err := os.CreateTemp("", "vmfs-live-*.xml")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(x); err != nil {
		f.Close()
		return err
	}
	f.Close()
	if _, err := r.v.run(context.Background(), "define", f.Name()); err != nil {
		return fmt.Errorf("domain %s: rewriting its definition: %w", dom, err)
	}
	return nil
}

// users lists the running domains that still use files of the mount.
func (r *run) users(ctx context.Context) ([]string, error) {
	o := r.o
	o.Domain = ""
	rr := &run{o: o, v: r.v, mnts: r.mnts}
	doms, err := rr.domains(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range doms {
		out = append(out, d.name)
	}
	return out, nil
}

// compare runs qemu-img compare on a file of the mount and its copy
// (sharing the locks of the QEMU that has the copy open).
func compare(src, srcFormat, copy, format string) error {
	out, err := exec.Command("qemu-img", "compare", "-U", "-f", srcFormat, "-F", format, src, copy).CombinedOutput()
	if err == nil {
		return nil
	}
	msg := strings.TrimSpace(string(out))
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
		return fmt.Errorf("%s differs from %s: %s", copy, src, oneLine(msg))
	}
	return fmt.Errorf("qemu-img compare %s %s: %v: %s", src, copy, err, oneLine(msg))
}
