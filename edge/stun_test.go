package edge

import (
	"context"
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

// startSTUN runs a STUN server on 127.0.0.1:0 for the test's duration.
func startSTUN(t *testing.T) *STUNServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewSTUNServer(pc, NewMetrics(nil), nil)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.Serve(ctx); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return s
}

func TestSTUNBindingRFC5389(t *testing.T) {
	s := startSTUN(t)
	c, err := stun.Dial("udp4", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.NewUsername("cpe-42"))
	var (
		got  stun.XORMappedAddress
		mapd stun.MappedAddress
		derr error
	)
	if err := c.Do(req, func(ev stun.Event) {
		if ev.Error != nil {
			derr = ev.Error
			return
		}
		if ev.Message.Type != stun.BindingSuccess {
			derr = errUnexpected(ev.Message.Type.String())
			return
		}
		if ev.Message.TransactionID != req.TransactionID {
			derr = errUnexpected("transaction id")
			return
		}
		derr = got.GetFrom(ev.Message)
		if derr == nil {
			derr = mapd.GetFrom(ev.Message)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if derr != nil {
		t.Fatal(derr)
	}
	if !got.IP.Equal(net.IPv4(127, 0, 0, 1)) || got.Port == 0 {
		t.Fatalf("XOR-MAPPED-ADDRESS = %v", got)
	}
	if !mapd.IP.Equal(got.IP) || mapd.Port != got.Port {
		t.Fatalf("MAPPED-ADDRESS %v != XOR-MAPPED-ADDRESS %v", mapd, got)
	}
	b, ok := s.Binding("cpe-42")
	if !ok || b.Addr.Port != got.Port {
		t.Fatalf("binding = %+v, %v; want port %d", b, ok, got.Port)
	}
}

type errUnexpected string

func (e errUnexpected) Error() string { return "unexpected " + string(e) }

func TestSTUNBindingRFC3489(t *testing.T) {
	s := startSTUN(t)
	conn, err := net.Dial("udp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Classic request: no magic cookie, a 16-byte transaction id, USERNAME.
	user := []byte("tr111-user")
	attr := make([]byte, 4+12)
	binary.BigEndian.PutUint16(attr[0:2], stunAttrUsername)
	binary.BigEndian.PutUint16(attr[2:4], uint16(len(user)))
	copy(attr[4:], user)
	req := make([]byte, 20, 20+len(attr))
	binary.BigEndian.PutUint16(req[0:2], stunBindingRequest)
	binary.BigEndian.PutUint16(req[2:4], uint16(len(attr)))
	for i := 4; i < 20; i++ {
		req[i] = byte(i * 7)
	}
	req = append(req, attr...)
	if _, err := conn.Write(req); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp := make([]byte, 1500)
	n, err := conn.Read(resp)
	if err != nil {
		t.Fatal(err)
	}
	resp = resp[:n]
	if got := binary.BigEndian.Uint16(resp[0:2]); got != stunBindingResponse {
		t.Fatalf("type %#x", got)
	}
	if string(resp[4:20]) != string(req[4:20]) {
		t.Fatal("transaction id not echoed")
	}
	a := resp[20:]
	if binary.BigEndian.Uint16(a[0:2]) != stunAttrMapped || a[5] != 1 {
		t.Fatalf("attribute %x", a)
	}
	port := int(binary.BigEndian.Uint16(a[6:8]))
	if want := conn.LocalAddr().(*net.UDPAddr).Port; port != want {
		t.Fatalf("mapped port %d, want %d", port, want)
	}
	if !net.IP(a[8:12]).Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("mapped ip %v", net.IP(a[8:12]))
	}
	if b, ok := s.Binding("tr111-user"); !ok || b.Addr.Port != port {
		t.Fatalf("binding %+v %v", b, ok)
	}
}

func TestSTUNIgnoresGarbage(t *testing.T) {
	s := startSTUN(t)
	conn, err := net.Dial("udp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, pkt := range [][]byte{
		[]byte("hello"),
		make([]byte, 19),
		append([]byte{0x01, 0x01, 0, 0}, make([]byte, 16)...), // a response, not a request
		append([]byte{0x00, 0x01, 0, 8}, make([]byte, 16)...), // length beyond the packet
	} {
		if _, err := conn.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 100)
	if n, err := conn.Read(buf); err == nil {
		t.Fatalf("answered garbage with %x", buf[:n])
	}
	// Still serving afterwards.
	c, err := stun.Dial("udp4", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := false
	if err := c.Do(stun.MustBuild(stun.TransactionID, stun.BindingRequest), func(ev stun.Event) { done = ev.Error == nil }); err != nil || !done {
		t.Fatalf("no answer after garbage: %v", err)
	}
}
