//go:build !linux

package pair

import "syscall"

// dieWithParent is Linux-only; elsewhere a crashed test run may leave its services running.
func dieWithParent() *syscall.SysProcAttr { return nil }
