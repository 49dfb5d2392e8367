//go:build unix

package testnet

import (
	"os"
	"syscall"
)

// lockPort takes the port's lock file without waiting; the lock lives as
// long as the returned release is not called (or the process lives).
func lockPort(path string) (release func(), ok bool) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return func() { f.Close() }, true
}
