//go:build !linux

package autoglm_test

import "syscall"

// meshProcAttr: only Linux can tie the mesh's life to the test binary's.
func meshProcAttr() *syscall.SysProcAttr { return nil }
