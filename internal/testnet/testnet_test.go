package testnet

import (
	"net"
	"strconv"
	"testing"
)

func TestAddrsAreDistinctBindableAndBelowEphemeral(t *testing.T) {
	addrs := Addrs(t, 50)
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			t.Fatalf("port %s reserved twice", a)
		}
		seen[a] = true
		_, p, _ := net.SplitHostPort(a)
		port, _ := strconv.Atoi(p)
		if port < lowest || port >= ephemeralLow() {
			t.Fatalf("port %d outside [%d, %d)", port, lowest, ephemeralLow())
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("reserved %s is not bindable: %v", a, err)
		}
		ln.Close()
	}
}

// TestReservationHoldsAcrossProcesses: while this test holds a port, the
// lock file refuses another holder (flock locks are per open file, so a
// second open in this process stands in for another process).
func TestReservationHoldsAcrossProcesses(t *testing.T) {
	addr, release, err := reserve()
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(addr)
	path := lockDir() + "/" + p
	if _, ok := lockPort(path); ok {
		t.Fatalf("port %s locked twice", addr)
	}
	release()
	again, ok := lockPort(path)
	if !ok {
		t.Fatalf("port %s still locked after release", addr)
	}
	again()
}
