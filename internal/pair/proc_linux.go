package pair

import "syscall"

// dieWithParent makes the kernel kill a service when the process that started it dies (a test
// binary that panicked or timed out), so no orphan keeps its port and CPU after a failed run.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
