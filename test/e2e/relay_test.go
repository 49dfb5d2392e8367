package e2e

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// udpRelay stands between an edge and a core's sync address: it forwards
// datagrams both ways until cut, then drops everything until restored. It
// is the test's backhaul.
type udpRelay struct {
	ln      *net.UDPConn
	target  *net.UDPAddr
	cut     atomic.Bool
	mu      sync.Mutex
	clients map[string]*net.UDPConn // edge address → socket towards the core
	wg      sync.WaitGroup
	closed  chan struct{}
}

func freeUDPAddr(t *testing.T) string {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

func newUDPRelay(t *testing.T, target string) *udpRelay {
	t.Helper()
	ta, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &udpRelay{ln: ln, target: ta, clients: map[string]*net.UDPConn{}, closed: make(chan struct{})}
	r.wg.Add(1)
	go r.forward()
	t.Cleanup(r.close)
	return r
}

func (r *udpRelay) addr() string { return r.ln.LocalAddr().String() }

func (r *udpRelay) setCut(cut bool) { r.cut.Store(cut) }

func (r *udpRelay) forward() {
	defer r.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := r.ln.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if r.cut.Load() {
			continue
		}
		r.mu.Lock()
		up := r.clients[from.String()]
		if up == nil {
			up, err = net.DialUDP("udp", nil, r.target)
			if err != nil {
				r.mu.Unlock()
				continue
			}
			r.clients[from.String()] = up
			r.wg.Add(1)
			go r.back(up, from)
		}
		r.mu.Unlock()
		_, _ = up.Write(buf[:n])
	}
}

// back copies the core's answers to the edge.
func (r *udpRelay) back(up *net.UDPConn, to *net.UDPAddr) {
	defer r.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, err := up.Read(buf)
		if err != nil {
			select {
			case <-r.closed:
				return
			default:
			}
			// An ICMP "port unreachable" (the core restarted) is not fatal.
			if errors.Is(err, syscall.ECONNREFUSED) {
				continue
			}
			return
		}
		if r.cut.Load() {
			continue
		}
		_, _ = r.ln.WriteToUDP(buf[:n], to)
	}
}

func (r *udpRelay) close() {
	select {
	case <-r.closed:
		return
	default:
	}
	close(r.closed)
	r.ln.Close()
	r.mu.Lock()
	for _, c := range r.clients {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}
