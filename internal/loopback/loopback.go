// Package loopback tells whether a listen address stays on this machine,
// which decides whether an API may serve plain HTTP there.
package loopback

import (
	"net"
	"strings"
)

// IsAddr reports whether hostPort's host is a loopback address or
// "localhost". A wildcard or empty host (every interface) is not, and
// neither is any other name: names are not resolved, so a name that
// happens to point at 127.0.0.1 today does not pass.
func IsAddr(hostPort string) bool {
	host, _, err := net.SplitHostPort(hostPort)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
