package e2e

import (
	"net"
	"testing"

	"github.com/edgeacs/edgeacs/internal/udprelay"
)

func freeUDPAddr(t *testing.T) string {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// newUDPRelay stands between an edge and a core's sync address: the
// test's backhaul, which it can cut.
func newUDPRelay(t *testing.T, target string) *udprelay.Relay {
	t.Helper()
	r, err := udprelay.Start(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}
