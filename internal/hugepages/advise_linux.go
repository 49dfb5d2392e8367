package hugepages

import "syscall"

// madvHugepage is MADV_HUGEPAGE (the syscall package does not name it).
const madvHugepage = 14

// adviseHuge asks for huge pages on [addr, addr+n).
func adviseHuge(addr, n uintptr) error {
	if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, addr, n, madvHugepage); e != 0 {
		return e
	}
	return nil
}
