//go:build !unix

package sim

// fdLimit is unknown outside Unix: no socket bound.
func fdLimit() uint64 { return 0 }
