package edge

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/pion/stun/v3"
)

// STUN wire constants the RFC 3489 path needs (pion/stun only decodes RFC
// 5389 messages, which carry the magic cookie).
const (
	stunHeaderSize      = 20
	stunBindingRequest  = 0x0001
	stunBindingResponse = 0x0101
	stunAttrMapped      = 0x0001
	stunAttrUsername    = 0x0006
	stunMagicCookie     = 0x2112A442
	maxSTUNBindings     = 1 << 18
)

// STUNBinding is the public address a CPE was last seen at by the STUN
// server: what its NAT maps its UDP connection-request port to.
type STUNBinding struct {
	Addr     *net.UDPAddr
	Username string
	Seen     time.Time
}

// STUNServer is a minimal STUN server (RFC 5389 Binding, tolerant of RFC
// 3489 clients, as TR-111 CPEs often are). It answers Binding Requests with
// the source address and remembers it per USERNAME, so that connection
// requests can reach a CPE behind NAT. Its socket also sends the UDP
// connection requests, from the port the NAT binding was made towards.
type STUNServer struct {
	pc      net.PacketConn
	metrics *Metrics
	log     *slog.Logger

	mu       sync.Mutex
	bindings map[string]STUNBinding
}

// NewSTUNServer serves STUN on pc once Serve is called. m may be nil.
func NewSTUNServer(pc net.PacketConn, m *Metrics, log *slog.Logger) *STUNServer {
	if log == nil {
		log = slog.Default()
	}
	return &STUNServer{pc: pc, metrics: m, log: log, bindings: make(map[string]STUNBinding)}
}

// Addr is the server's bound address.
func (s *STUNServer) Addr() net.Addr { return s.pc.LocalAddr() }

// Conn is the server's socket, for sending UDP connection requests.
func (s *STUNServer) Conn() net.PacketConn { return s.pc }

// Close closes the socket; Serve then returns.
func (s *STUNServer) Close() error { return s.pc.Close() }

// Binding returns the last binding recorded for a STUN USERNAME.
func (s *STUNServer) Binding(username string) (STUNBinding, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.bindings[username]
	return b, ok
}

// Serve answers requests until ctx is done or the socket is closed.
func (s *STUNServer) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.pc.Close() })
	defer stop()
	buf := make([]byte, 1500)
	msg := new(stun.Message)
	for {
		n, from, err := s.pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok || n < stunHeaderSize {
			continue
		}
		resp, user, ok := s.answer(buf[:n], ua, msg)
		if !ok {
			continue
		}
		// Recorded before the reply: a CPE (or test) that got its answer
		// can rely on the edge knowing its binding.
		if user != "" {
			s.record(user, ua)
		}
		if _, err := s.pc.WriteTo(resp, ua); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Debug("STUN reply failed", "to", ua.String(), "err", err)
		}
		if s.metrics != nil {
			s.metrics.STUNRequests.Inc()
		}
	}
}

// answer builds the Binding Response to a request, or ok=false for
// anything that is not a well-formed Binding Request.
func (s *STUNServer) answer(pkt []byte, from *net.UDPAddr, msg *stun.Message) (resp []byte, username string, ok bool) {
	if binary.BigEndian.Uint16(pkt[0:2]) != stunBindingRequest {
		return nil, "", false
	}
	if !stun.IsMessage(pkt) {
		return answerRFC3489(pkt, from)
	}
	msg.Reset()
	msg.Raw = append(msg.Raw[:0], pkt...)
	if err := msg.Decode(); err != nil {
		return nil, "", false
	}
	var u stun.Username
	if err := u.GetFrom(msg); err == nil {
		username = u.String()
	}
	out, err := stun.Build(stun.NewTransactionIDSetter(msg.TransactionID), stun.BindingSuccess,
		&stun.XORMappedAddress{IP: from.IP, Port: from.Port},
		&stun.MappedAddress{IP: from.IP, Port: from.Port})
	if err != nil {
		return nil, "", false
	}
	return out.Raw, username, true
}

// answerRFC3489 answers a classic STUN request: the 16 bytes after the type
// and length are all transaction ID, echoed as is, and the address goes in
// MAPPED-ADDRESS only.
func answerRFC3489(pkt []byte, from *net.UDPAddr) ([]byte, string, bool) {
	length := int(binary.BigEndian.Uint16(pkt[2:4]))
	if length%4 != 0 || stunHeaderSize+length > len(pkt) {
		return nil, "", false
	}
	var username string
	attrs := pkt[stunHeaderSize : stunHeaderSize+length]
	for len(attrs) >= 4 {
		t := binary.BigEndian.Uint16(attrs[0:2])
		l := int(binary.BigEndian.Uint16(attrs[2:4]))
		padded := (l + 3) &^ 3
		if 4+padded > len(attrs) {
			return nil, "", false
		}
		if t == stunAttrUsername {
			username = string(attrs[4 : 4+l])
		}
		attrs = attrs[4+padded:]
	}
	ip4 := from.IP.To4()
	family, ip := byte(0x02), from.IP.To16()
	if ip4 != nil {
		family, ip = 0x01, ip4
	}
	attrLen := 4 + len(ip)
	out := make([]byte, stunHeaderSize+4+attrLen)
	binary.BigEndian.PutUint16(out[0:2], stunBindingResponse)
	binary.BigEndian.PutUint16(out[2:4], uint16(4+attrLen))
	copy(out[4:20], pkt[4:20])
	a := out[stunHeaderSize:]
	binary.BigEndian.PutUint16(a[0:2], stunAttrMapped)
	binary.BigEndian.PutUint16(a[2:4], uint16(attrLen))
	a[5] = family
	binary.BigEndian.PutUint16(a[6:8], uint16(from.Port))
	copy(a[8:], ip)
	return out, username, true
}

func (s *STUNServer) record(username string, from *net.UDPAddr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.bindings[username]; !ok && len(s.bindings) >= maxSTUNBindings {
		// Bounded: drop an arbitrary binding; the CPE refreshes it with its
		// next Binding Request anyway.
		for k := range s.bindings {
			delete(s.bindings, k)
			break
		}
	}
	s.bindings[username] = STUNBinding{Addr: from, Username: username, Seen: time.Now()}
}
