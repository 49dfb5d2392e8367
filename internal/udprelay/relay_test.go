package udprelay

import (
	"net"
	"testing"
	"time"
)

// TestPolicer: the bucket passes a burst, then the rate, and nothing is
// limited at rate 0.
func TestPolicer(t *testing.T) {
	var p policer
	t0 := time.Unix(1000, 0)
	passed := 0
	for range 100 {
		if p.allow(100, t0) {
			passed++
		}
	}
	if passed != 10 { // a tenth of a second's worth
		t.Fatalf("burst passed %d, want 10", passed)
	}
	passed = 0
	for i := range 1000 { // one second, a datagram every millisecond
		if p.allow(100, t0.Add(time.Duration(i+1)*time.Millisecond)) {
			passed++
		}
	}
	if passed < 99 || passed > 101 {
		t.Fatalf("a second at 100/s passed %d", passed)
	}
	for range 50 {
		if !p.allow(0, t0) {
			t.Fatal("rate 0 dropped a datagram")
		}
	}
}

// TestRelayCutAndRate: datagrams cross while open, none while cut, and a
// rate limit drops what a burst sends beyond the bucket.
func TestRelayCutAndRate(t *testing.T) {
	target, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	r, err := Start(target.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, err := net.Dial("udp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	received := func(send int) int {
		for range send {
			if _, err := c.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		got := 0
		buf := make([]byte, 16)
		for {
			target.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if _, _, err := target.ReadFromUDP(buf); err != nil {
				return got
			}
			got++
		}
	}
	if got := received(5); got != 5 {
		t.Fatalf("open: %d of 5 crossed", got)
	}
	r.SetCut(true)
	if got := received(5); got != 0 {
		t.Fatalf("cut: %d crossed", got)
	}
	r.SetCut(false)
	r.SetUplinkRate(10) // a burst of 4
	if got := received(200); got < 4 || got > 20 {
		t.Fatalf("rate 10/s: %d of a 200-datagram burst crossed, want the bucket's 4 plus what refilled", got)
	}
	r.SetUplinkRate(0)
	if got := received(5); got != 5 {
		t.Fatalf("limit lifted: %d of 5 crossed", got)
	}
}
