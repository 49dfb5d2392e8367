//go:build !linux

package hugepages

import "errors"

// adviseHuge is Linux's; elsewhere Wanted is false and nothing calls it.
func adviseHuge(addr, n uintptr) error { return errors.ErrUnsupported }
