//go:build !unix

package testnet

// lockPort has no cross-process lock here: the port is only checked free.
func lockPort(string) (func(), bool) { return func() {}, true }
