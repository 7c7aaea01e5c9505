package testenv

import "time"

// Kill kills QEMU (SIGKILL) if it is still running and waits for it to be
// gone, for tests that must release the disk files before the guest is done
// (a vmfs daemon killed under a running guest).
func (vm *VM) Kill(timeout time.Duration) bool {
	select {
	case <-vm.done:
		return true
	default:
	}
	_ = vm.cmd.Process.Kill()
	select {
	case <-vm.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Wait waits up to timeout for QEMU to exit by itself and reports whether
// it did (without failing the test, unlike WaitExit).
func (vm *VM) Wait(timeout time.Duration) bool {
	select {
	case <-vm.done:
		return true
	case <-time.After(timeout):
		return false
	}
}
