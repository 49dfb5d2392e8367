package e2e

import (
	"testing"

	"github.com/edgeacs/edgeacs/internal/testnet"
	"github.com/edgeacs/edgeacs/internal/udprelay"
)

// freeUDPAddr reserves a loopback port for a UDP listener under test.
func freeUDPAddr(t *testing.T) string {
	t.Helper()
	return testnet.Addr(t)
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
