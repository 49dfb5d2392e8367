package slotconn

import (
	"net"
	"testing"
)

// TestReleaseOnce: the slot comes back at the first Close, not before and
// not again, and Close still closes the connection.
func TestReleaseOnce(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	released := 0
	c := New(a, func() { released++ })
	if released != 0 {
		t.Fatalf("released %d times before Close", released)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if released != 1 {
		t.Fatalf("released %d times after two Closes, want 1", released)
	}
	if _, err := c.Write([]byte("x")); err == nil {
		t.Fatal("write on a closed connection succeeded")
	}
}
