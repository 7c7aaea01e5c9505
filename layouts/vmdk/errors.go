package vmdk

import (
	"errors"
	"fmt"

	"github.com/vmfs/vmfs/layouts"
)

var (
	errFormat      = layouts.ErrFormat
	errUnsupported = layouts.ErrUnsupported
	errWrongType   = layouts.ErrWrongType
)

// vmdkError is a one-line error that names the file and wraps a sentinel
// without repeating its text.
type vmdkError struct {
	msg string
	err error
}

func (e *vmdkError) Error() string { return e.msg }
func (e *vmdkError) Unwrap() error { return e.err }

// errf formats "vmdk: NAME: MESSAGE" wrapping sentinel.
func errf(name string, sentinel error, format string, args ...any) error {
	return &vmdkError{msg: "vmdk: " + name + ": " + fmt.Sprintf(format, args...), err: sentinel}
}

// wrapEnv prefixes an error of layouts.Env (which names the file already)
// with the package name.
func wrapEnv(err error) error {
	if err == nil {
		return nil
	}
	var ve *vmdkError
	if errors.As(err, &ve) {
		return err
	}
	return &vmdkError{msg: "vmdk: " + err.Error(), err: err}
}
