package pebbletest

import "syscall"

// sysProcAttr kills a child when the test binary dies (a panic, a timeout), so no Pebble outlives
// its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
