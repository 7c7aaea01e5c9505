package translate

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/vmfs/vmfs/layouts"
)

// ReadDescriptorIn is ReadDescriptor from env's files: the descriptor of
// a remote source (env.Remote) is read from its remote tree, in one
// bounded read; a local one (env nil or local) as ReadDescriptor reads it.
func ReadDescriptorIn(env *layouts.Env, path string, limit int64, what string) ([]byte, error) {
	if !env.IsRemote() {
		return ReadDescriptor(path, limit, what)
	}
	f, err := env.Remote.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if f.Size() > limit {
		return nil, fmt.Errorf("%d bytes is too large for %s (limit %d)", f.Size(), what, limit)
	}
	b := make([]byte, f.Size())
	if n, err := f.ReadAt(b, 0); n < len(b) {
		return nil, fmt.Errorf("reading %s: %w", env.Display(path), err)
	}
	return b, nil
}

// ReadDescriptor reads the descriptor file at path for a parser: a
// directory is refused, and so is a file larger than limit bytes, which
// is never read whole (the read stops at limit+1 bytes, should the file
// grow after its size was looked at). what names the kind of file in the
// error (".vmx", "domain XML" ...). Errors of the file system are returned
// as they are (an *os.PathError naming path); the others say what is wrong
// without the path, for the parser to put its own prefix before.
func ReadDescriptor(path string, limit int64, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, errors.New("is a directory")
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%d bytes is too large for %s (limit %d)", st.Size(), what, limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("more than %d bytes is too large for %s (limit %d)", limit, what, limit)
	}
	return b, nil
}

// DescriptorError puts a parser's prefix before an error of
// ReadDescriptor: "vmx: stat x.vmx: no such file or directory" for the
// file system's, "vmx: x.vmx: is a directory" for the others.
func DescriptorError(prefix, name string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", prefix, err)
	}
	return fmt.Errorf("%s: %s: %w", prefix, name, err)
}
