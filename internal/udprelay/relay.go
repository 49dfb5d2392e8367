// Package udprelay is a test network path for UDP (the sync link's QUIC):
// it forwards datagrams both ways between its clients and one target until
// cut, then drops everything until restored. Tests use it as a backhaul
// they can cut.
package udprelay

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// Relay listens on a loopback UDP port and relays to one target address.
type Relay struct {
	ln      *net.UDPConn
	target  *net.UDPAddr
	cut     atomic.Bool
	mu      sync.Mutex
	clients map[string]*net.UDPConn // client address → socket towards the target
	wg      sync.WaitGroup
	closed  chan struct{}
	once    sync.Once
}

// Start listens on 127.0.0.1 (a free port) and relays to target; Close
// stops it.
func Start(target string) (*Relay, error) {
	ta, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return nil, fmt.Errorf("relay to %s: %w", target, err)
	}
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("relay to %s: %w", target, err)
	}
	r := &Relay{ln: ln, target: ta, clients: map[string]*net.UDPConn{}, closed: make(chan struct{})}
	r.wg.Add(1)
	go r.forward()
	return r, nil
}

// Addr is the address clients send to.
func (r *Relay) Addr() string { return r.ln.LocalAddr().String() }

// SetCut drops every datagram, both ways, while cut is true.
func (r *Relay) SetCut(cut bool) { r.cut.Store(cut) }

func (r *Relay) forward() {
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
			if up, err = net.DialUDP("udp", nil, r.target); err != nil {
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

// back copies the target's datagrams to one client.
func (r *Relay) back(up *net.UDPConn, to *net.UDPAddr) {
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
			// ICMP "port unreachable" (the target restarted) is not fatal.
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

// Close stops relaying and waits for the relay's goroutines.
func (r *Relay) Close() {
	r.once.Do(func() {
		close(r.closed)
		r.ln.Close()
		r.mu.Lock()
		for _, c := range r.clients {
			c.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
}
