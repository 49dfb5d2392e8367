// Package testnet reserves loopback ports for tests that hand addresses,
// not listeners, to what they start (a child process, a Raft transport that
// binds its own port).
//
// The usual trick, listen on 127.0.0.1:0 and close, races twice: the kernel
// hands the same ephemeral port to the next outgoing connection of any
// process, and a second test run on the box may pick it too. Ports here
// come from below the kernel's ephemeral range, so no outgoing connection
// takes them, and each is held by an advisory file lock shared by every
// test process on the machine until the test that reserved it ends.
package testnet

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// lowest is the bottom of the range ports are drawn from; the top is just
// below the ephemeral range.
const lowest = 20000

// Addr reserves a loopback port free for both TCP and UDP and returns it as
// "127.0.0.1:PORT". The reservation ends with t.
func Addr(t testing.TB) string {
	t.Helper()
	addr, release, err := reserve()
	if err != nil {
		t.Fatalf("reserve a loopback port: %v", err)
	}
	t.Cleanup(release)
	return addr
}

// Addrs reserves n ports, as Addr.
func Addrs(t testing.TB, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		out[i] = Addr(t)
	}
	return out
}

func reserve() (string, func(), error) {
	top := ephemeralLow() - 1
	if top-lowest < 1000 {
		return listenZero()
	}
	dir := lockDir()
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return "", nil, err
	}
	for range 2000 {
		port := lowest + rand.IntN(top-lowest+1)
		unlock, ok := lockPort(filepath.Join(dir, strconv.Itoa(port)))
		if !ok {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if bindable(addr) {
			return addr, unlock, nil
		}
		unlock()
	}
	return "", nil, fmt.Errorf("no free port in %d-%d after 2000 tries", lowest, top)
}

// bindable reports whether both a TCP listener and a UDP socket can bind addr.
func bindable(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	pc.Close()
	return true
}

// ephemeralLow reads the bottom of the kernel's ephemeral port range
// (Linux); elsewhere it assumes IANA's 49152.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 49152
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 49152
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 49152
	}
	return n
}

// listenZero is the fallback where no range is left below the ephemeral
// ports: the kernel's choice, with its race.
func listenZero() (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	defer ln.Close()
	return ln.Addr().String(), func() {}, nil
}

// lockDir holds one lock file per port, shared by every test process.
func lockDir() string { return filepath.Join(os.TempDir(), "edgeacs-test-ports") }
