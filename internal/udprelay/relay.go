// Package udprelay is a test network path for UDP (the sync link's QUIC):
// it forwards datagrams both ways between its clients and one target until
// cut, then drops everything until restored. Tests use it as a backhaul
// they can cut, or narrow (a rate limit on the clients' direction) so that
// a transfer lasts long enough to act in the middle of it.
package udprelay

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Relay listens on a loopback UDP port and relays to one target address.
type Relay struct {
	ln      *net.UDPConn
	target  *net.UDPAddr
	cut     atomic.Bool
	rate    atomic.Int64 // client→target datagrams per second; 0 is unlimited
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

// SetUplinkRate polices the clients' direction to perSecond datagrams a
// second, as a congested backhaul does: what exceeds the rate (after a
// burst of a tenth of a second's worth) is dropped, and QUIC's congestion
// control settles near the rate. Replies are not limited. 0 lifts the
// limit.
func (r *Relay) SetUplinkRate(perSecond int) { r.rate.Store(int64(max(perSecond, 0))) }

// policer is a token bucket owned by the forwarding goroutine.
type policer struct {
	tokens float64
	last   time.Time
}

// allow reports whether one more datagram fits rate (per second) now.
func (p *policer) allow(rate int64, now time.Time) bool {
	if rate <= 0 {
		p.last = time.Time{}
		return true
	}
	burst := max(float64(rate)/10, 4)
	if p.last.IsZero() {
		p.tokens = burst
	} else {
		p.tokens = min(burst, p.tokens+now.Sub(p.last).Seconds()*float64(rate))
	}
	p.last = now
	if p.tokens < 1 {
		return false
	}
	p.tokens--
	return true
}

func (r *Relay) forward() {
	defer r.wg.Done()
	buf := make([]byte, 64<<10)
	var pol policer
	for {
		n, from, err := r.ln.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if r.cut.Load() || !pol.allow(r.rate.Load(), time.Now()) {
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
