package autoglm_test

import "syscall"

// meshProcAttr makes the kernel interrupt the mesh, which then stops its
// services, if the test binary dies before it can (a panic, go test's timeout).
func meshProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGINT}
}
