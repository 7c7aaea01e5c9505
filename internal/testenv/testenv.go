// Package testenv holds the helpers vmfs's end-to-end tests share: building
// the vmfs binary once per test process, mounting with `vmfs mount --daemon`
// and always unmounting, the cached test guests (testdata/guest/build.sh),
// booting disks or libvirt XML under QEMU with the serial port in a file,
// starting libvirtd, and checksums for the "source unchanged" checks.
//
// A package using it should run its tests through Main, so that what the
// helpers started for the whole process (the vmfs binary's temp dir,
// libvirtd and virtlogd when they were not running) is removed at the end:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// Environment:
//
//	CI=true                  missing tools fail the test instead of skipping it
//	VMFS_BIN                 use this vmfs binary instead of building one
//	VMFS_TEST_CACHE          guest cache dir (default $HOME/.cache/vmfs-test)
//	VMFS_TEST_BOOT_TIMEOUT   how long a boot may take (Go duration; default 5m)
//	VMFS_TEST_KVM=1          boot real guests under KVM too (default: TCG)
//	VMFS_TEST_KEEP_LIBVIRT=1 leave libvirtd/virtlogd running at the end
//	VMFS_TEST_FULL=1         also boot the guests on every disk bus
//
// XDG_CACHE_HOME, and VMFS_RUN_DIR when unset, are replaced by temporary
// directories (see Main).
package testenv

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Main runs the tests, then removes what the helpers set up once per process
// (the built binary, daemons they started, the cache dir below) and exits
// with the tests' code.
//
// The vmfs processes the tests start get a cache dir of their own
// (XDG_CACHE_HOME), so that a mount without --overlay puts its overlay there
// rather than in the user's ~/.cache/vmfs/overlays, and, unless
// VMFS_RUN_DIR is set already, a registry dir of their own, so that the
// logs of the mounts tests make fail stay out of /run/vmfs. Both are
// removed at the end. The Go build cache stays the user's (GOCACHE is
// pinned to it first).
func Main(m *testing.M) {
	if err := privateDirs(); err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		os.Exit(1)
	}
	code := m.Run()
	cleanupProcess()
	os.Exit(code)
}

// privateDirs points XDG_CACHE_HOME and VMFS_RUN_DIR, which this
// process's children inherit, at a new temporary directory removed at exit.
func privateDirs() error {
	if os.Getenv("GOCACHE") == "" {
		// BuildVMFS's `go build` would otherwise start a cold cache.
		if out, err := exec.Command(goBinary(), "env", "GOCACHE").Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
			os.Setenv("GOCACHE", string(bytes.TrimSpace(out)))
		}
	}
	dir, err := os.MkdirTemp("", "vmfs-test-dirs-")
	if err != nil {
		return fmt.Errorf("cache and registry dirs for the vmfs processes: %w", err)
	}
	atExit(func() { os.RemoveAll(dir) })
	if os.Getenv("VMFS_RUN_DIR") == "" {
		if err := os.Setenv("VMFS_RUN_DIR", filepath.Join(dir, "run")); err != nil {
			return err
		}
	}
	return os.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
}

var (
	procMu       sync.Mutex
	procCleanups []func()
)

// atExit registers f to run when Main returns (last registered runs first).
func atExit(f func()) {
	procMu.Lock()
	defer procMu.Unlock()
	procCleanups = append(procCleanups, f)
}

func cleanupProcess() {
	procMu.Lock()
	fs := procCleanups
	procCleanups = nil
	procMu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// InCI reports whether the tests run in CI (CI=true), where a missing tool is
// a failure rather than a reason to skip.
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1" || v == "yes"
}

// Need fails the test in CI and skips it elsewhere, saying why.
func Need(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("testenv: %s (CI=true: not skipping)", msg)
	}
	t.Skipf("testenv: %s", msg)
}

// NeedCommands calls Need unless every command is in $PATH.
func NeedCommands(t testing.TB, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			Need(t, "%s not installed (testdata/guest/build.sh --install-test-deps installs it)", c)
		}
	}
}

// RepoRoot is the root of the vmfs module this package was compiled from.
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testenv: cannot locate the source tree")
	}
	root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("testenv: %s has no go.mod", root)
	}
	return root
}

// BootTimeout is how long one boot may take (VMFS_TEST_BOOT_TIMEOUT,
// default 5 minutes: TCG on a loaded shared machine is slow).
func BootTimeout() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("VMFS_TEST_BOOT_TIMEOUT")); err == nil && d > 0 {
		return d
	}
	return 5 * time.Minute
}

var vmfsBin struct {
	once sync.Once
	path string
	err  error
}

// BuildVMFS builds ./cmd/vmfs once per test process into a temp dir (or
// uses $VMFS_BIN) and returns the binary's path.
func BuildVMFS(t testing.TB) string {
	t.Helper()
	root := RepoRoot(t)
	vmfsBin.once.Do(func() {
		if p := os.Getenv("VMFS_BIN"); p != "" {
			vmfsBin.path, vmfsBin.err = filepath.Abs(p)
			return
		}
		dir, err := os.MkdirTemp("", "vmfs-testbin-")
		if err != nil {
			vmfsBin.err = err
			return
		}
		atExit(func() { os.RemoveAll(dir) })
		if err := os.Chmod(dir, 0o755); err != nil {
			vmfsBin.err = err
			return
		}
		bin := filepath.Join(dir, "vmfs")
		cmd := exec.Command(goBinary(), "build", "-o", bin, "./cmd/vmfs")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			vmfsBin.err = fmt.Errorf("go build ./cmd/vmfs: %v\n%s", err, out)
			return
		}
		vmfsBin.path = bin
	})
	if vmfsBin.err != nil {
		t.Fatalf("testenv: %v", vmfsBin.err)
	}
	return vmfsBin.path
}

// goBinary is the go command of the toolchain the tests were built with.
func goBinary() string {
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		return "go"
	}
	return gobin
}

// VMFS runs the vmfs binary with args and returns its stdout; a failure
// returns an error holding the command line and stderr.
func VMFS(t testing.TB, args ...string) ([]byte, error) {
	t.Helper()
	return runVMFS(t, 5*time.Minute, args...)
}

func runVMFS(t testing.TB, timeout time.Duration, args ...string) ([]byte, error) {
	t.Helper()
	bin := BuildVMFS(t)
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return stdout.Bytes(), fmt.Errorf("vmfs %s: %v: %s", strings.Join(args, " "), err,
				strings.TrimSpace(stderr.String()))
		}
		return stdout.Bytes(), nil
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return stdout.Bytes(), fmt.Errorf("vmfs %s: no answer after %v: %s", strings.Join(args, " "),
			timeout, strings.TrimSpace(stderr.String()))
	}
}

// MountDir returns a new empty directory to mount on, whose parents QEMU
// running as another user (libvirt-qemu) can traverse.
func MountDir(t testing.TB) string {
	t.Helper()
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	Traversable(t, mnt)
	return mnt
}

// Traversable adds the execute (search) bit for group and others to every
// parent directory of path, as libvirt's QEMU runs as libvirt-qemu and must
// reach files under it. Permissions are only ever widened to 0711.
func Traversable(t testing.TB, path string) {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		if perm := fi.Mode().Perm(); perm&0o011 != 0o011 {
			if err := os.Chmod(d, perm|0o011); err != nil {
				t.Fatalf("testenv: %v", err)
			}
		}
		if d == filepath.Dir(d) {
			return
		}
	}
}

// Mount runs `vmfs mount --daemon ARGS...`, whose last argument is the
// mountpoint, and returns the mountpoint. Unmounting is registered with
// t.Cleanup before the mount starts, so it happens however the test ends.
func Mount(t testing.TB, args ...string) string {
	t.Helper()
	mnt, err := TryMount(t, args...)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return mnt
}

// TryMount is Mount returning the error (for tests that expect one or that
// skip on "not supported").
func TryMount(t testing.TB, args ...string) (string, error) {
	t.Helper()
	if len(args) < 2 {
		t.Fatal("testenv: Mount needs SRC and MOUNTPOINT")
	}
	NeedCommands(t, "fusermount3")
	if _, err := os.Stat("/dev/fuse"); err != nil {
		Need(t, "no /dev/fuse")
	}
	mnt, err := filepath.Abs(args[len(args)-1])
	if err != nil {
		t.Fatal(err)
	}
	args = append(args[:len(args)-1:len(args)-1], mnt)
	t.Cleanup(func() {
		if err := Unmount(t, mnt); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	if _, err := runVMFS(t, 3*time.Minute, append([]string{"mount", "--daemon"}, args...)...); err != nil {
		return mnt, err
	}
	// --daemon returns once the mount serves; check it is really there.
	deadline := time.Now().Add(10 * time.Second)
	for !IsMounted(mnt) {
		if time.Now().After(deadline) {
			return mnt, fmt.Errorf("vmfs mount --daemon returned but %s is not mounted", mnt)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return mnt, nil
}

// Unmount runs `vmfs unmount MNT` when MNT is mounted, falling back to a
// lazy fusermount3 -u -z, and waits until the kernel no longer lists it.
func Unmount(t testing.TB, mnt string) error {
	t.Helper()
	if !IsMounted(mnt) {
		return nil
	}
	_, err := runVMFS(t, time.Minute, "unmount", mnt)
	if err == nil && waitUnmounted(mnt, 10*time.Second) {
		return nil
	}
	out, ferr := exec.Command("fusermount3", "-u", "-z", mnt).CombinedOutput()
	if !waitUnmounted(mnt, 10*time.Second) {
		return fmt.Errorf("cannot unmount %s: %v; fusermount3: %v %s", mnt, err, ferr, out)
	}
	if err != nil {
		return fmt.Errorf("vmfs unmount %s failed (lazy fusermount3 -u -z did it): %v", mnt, err)
	}
	return fmt.Errorf("vmfs unmount %s returned but it stayed mounted (fusermount3 -u -z did it)", mnt)
}

func waitUnmounted(mnt string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for IsMounted(mnt) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// IsMounted reports whether path is a mountpoint in this mount namespace.
func IsMounted(path string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	want := escapeMountinfo(path)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == want {
			return true
		}
	}
	return false
}

// escapeMountinfo escapes path as /proc/self/mountinfo does (octal for
// space, tab, newline and backslash).
func escapeMountinfo(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case ' ', '\t', '\n', '\\':
			fmt.Fprintf(&b, "\\%03o", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// SHA256File returns the hex SHA-256 of a file's contents.
func SHA256File(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("testenv: %s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// SHA256Tree returns the SHA-256 of every regular file under dir, keyed by
// slash-separated relative path, plus each file's size and mode so a
// truncation or chmod shows too. Compare before and after with CheckSame.
func SHA256Tree(t testing.TB, dir string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			sums[filepath.ToSlash(rel)] = fmt.Sprintf("%s size=%d mode=%v", SHA256File(t, p), fi.Size(), fi.Mode())
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			sums[filepath.ToSlash(rel)] = "symlink " + target
		}
		return nil
	})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return sums
}

// CheckSame reports every difference between two SHA256Tree results.
func CheckSame(t testing.TB, what string, before, after map[string]string) {
	t.Helper()
	for k, v := range before {
		if w, ok := after[k]; !ok {
			t.Errorf("%s: %s disappeared", what, k)
		} else if w != v {
			t.Errorf("%s: %s changed: %s -> %s", what, k, v, w)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s: %s appeared", what, k)
		}
	}
}

// CopyTree copies the regular files and directories under src to dst
// (sparse-agnostic, small trees only) and returns dst.
func CopyTree(t testing.TB, src, dst string) string {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return copyFile(p, to)
	})
	if err != nil {
		t.Fatalf("testenv: copy %s: %v", src, err)
	}
	return dst
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
