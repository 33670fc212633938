//go:build !linux

package pebbletest

import "syscall"

// sysProcAttr: only Linux has a parent-death signal; elsewhere t.Cleanup is all there is.
func sysProcAttr() *syscall.SysProcAttr { return nil }
