package cwmp

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Connection-request errors callers branch on (match with errors.Is).
var (
	// ErrInvalidCRURL means the ConnectionRequestURL is not an http(s) URL
	// with a host.
	ErrInvalidCRURL = errors.New("cwmp: invalid connection request URL")
	// ErrCRAuthFailed means the CPE refused the credentials.
	ErrCRAuthFailed = errors.New("cwmp: connection request authentication failed")
	// ErrDeviceOffline means the CPE could not be reached or is busy: refused,
	// reset, timed out, unresolvable, or HTTP 503.
	ErrDeviceOffline = errors.New("cwmp: device is offline")
	// ErrCRRejected means the CPE answered with an unexpected HTTP status.
	ErrCRRejected = errors.New("cwmp: connection request rejected")
	// ErrMalformedUDPCR means a datagram is not a TR-111 UDP connection request.
	ErrMalformedUDPCR = errors.New("cwmp: malformed UDP connection request")
	// ErrUDPCRSignature means a UDP connection request's signature is wrong.
	ErrUDPCRSignature = errors.New("cwmp: UDP connection request signature mismatch")
	// ErrUDPCRStale means a UDP connection request's timestamp is out of range.
	ErrUDPCRStale = errors.New("cwmp: UDP connection request timestamp out of range")
)

// DefaultCRTimeout bounds an HTTP connection request whose context has no
// deadline (GenieACS uses the same 2 s).
const DefaultCRTimeout = 2 * time.Second

// CROption tunes HTTPConnectionRequest.
type CROption func(*crConfig)

type crConfig struct {
	allowBasic bool
}

// AllowBasicAuth lets HTTPConnectionRequest answer a Basic challenge. TR-069
// requires CPEs to demand Digest; Basic sends the password in the clear.
func AllowBasicAuth() CROption { return func(c *crConfig) { c.allowBasic = true } }

// HTTPConnectionRequest asks a CPE to open a session (TR-069 §3.2.2): a GET
// to its ConnectionRequestURL answering the Digest challenge with the
// connection-request credentials. client nil means a plain http.Client; its
// Transport, if any, carries the requests under the digest layer. Without
// a deadline in ctx the request is bounded by DefaultCRTimeout.
//
// 200 or 204 → nil. A final 401 → ErrCRAuthFailed. 503 or a transport
// failure (refused, reset, timeout, DNS) → ErrDeviceOffline, wrapping the
// detail. Cancelling ctx returns ctx's error. Other statuses →
// ErrCRRejected. A socket error other than "refused" is retried once,
// because some CPEs drop the connection after the 401 (GenieACS does the
// same).
func HTTPConnectionRequest(ctx context.Context, client *http.Client, rawURL, username, password string, opts ...CROption) error {
	var cfg crConfig
	for _, o := range opts {
		o(&cfg)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("%w: %q: %v", ErrInvalidCRURL, rawURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: %q: need an http or https URL with a host", ErrInvalidCRURL, rawURL)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCRTimeout)
		defer cancel()
	}
	c := http.Client{}
	if client != nil {
		c = *client
	}
	c.Transport = &DigestTransport{Username: username, Password: password, Base: c.Transport, AllowBasic: cfg.allowBasic}

	var resp *http.Response
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return fmt.Errorf("%w: %q: %v", ErrInvalidCRURL, rawURL, err)
		}
		resp, err = c.Do(req)
		if err == nil {
			break
		}
		if ctx.Err() == context.Canceled {
			return fmt.Errorf("connection request to %s: %w", u.Redacted(), ctx.Err())
		}
		if attempt == 0 && ctx.Err() == nil && !errors.Is(err, syscall.ECONNREFUSED) {
			continue
		}
		return fmt.Errorf("%w: connection request to %s: %w", ErrDeviceOffline, u.Redacted(), err)
	}
	discard(resp)
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent:
		return nil
	case http.StatusUnauthorized:
		// The username (never the password) tells a wrong username from a
		// wrong password when an operator reads the log.
		return fmt.Errorf("%w: %s answered 401 to username %q", ErrCRAuthFailed, u.Redacted(), username)
	case http.StatusServiceUnavailable:
		return fmt.Errorf("%w: %s answered 503", ErrDeviceOffline, u.Redacted())
	}
	return fmt.Errorf("%w: %s answered %s", ErrCRRejected, u.Redacted(), resp.Status)
}

// UDPConnectionRequest is a TR-111 Part 2 UDP connection request (TR-069
// Annex G): an HTTP-like GET in one datagram, signed with the
// connection-request password.
type UDPConnectionRequest struct {
	// Host is the destination "host:port" (UDPConnectionRequestAddress).
	Host string
	// Timestamp is Unix seconds (ts).
	Timestamp int64
	// ID is the message id (id) the CPE uses to drop duplicates.
	ID string
	// Username is the connection-request username (un).
	Username string
	// CNonce is a random client nonce (cn).
	CNonce string
	// Signature is lowercase hex HMAC-SHA1(password, ts||id||un||cn) (sig).
	Signature string
}

// NewUDPConnectionRequest builds a signed request to addr ("host:port")
// with a random message id and cnonce.
func NewUDPConnectionRequest(addr, username, password string, now time.Time) UDPConnectionRequest {
	var b [4]byte
	_, _ = rand.Read(b[:])
	r := UDPConnectionRequest{
		Host:      addr,
		Timestamp: now.Unix(),
		ID:        strconv.FormatUint(uint64(binary.BigEndian.Uint32(b[:])), 10),
		Username:  username,
		CNonce:    randomHex(8),
	}
	r.Signature = hex.EncodeToString(r.mac(password))
	return r
}

func (r UDPConnectionRequest) mac(password string) []byte {
	m := hmac.New(sha1.New, []byte(password))
	m.Write([]byte(strconv.FormatInt(r.Timestamp, 10) + r.ID + r.Username + r.CNonce))
	return m.Sum(nil)
}

// Marshal renders the datagram:
//
//	GET http://host:port?ts=…&id=…&un=…&cn=…&sig=… HTTP/1.1\r\nHost: host:port\r\n\r\n
//
// Query values are URL-escaped; the signature covers the unescaped values.
func (r UDPConnectionRequest) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("GET http://")
	b.WriteString(r.Host)
	b.WriteString("?ts=")
	b.WriteString(strconv.FormatInt(r.Timestamp, 10))
	b.WriteString("&id=")
	b.WriteString(url.QueryEscape(r.ID))
	b.WriteString("&un=")
	b.WriteString(url.QueryEscape(r.Username))
	b.WriteString("&cn=")
	b.WriteString(url.QueryEscape(r.CNonce))
	b.WriteString("&sig=")
	b.WriteString(url.QueryEscape(r.Signature))
	b.WriteString(" HTTP/1.1\r\nHost: ")
	b.WriteString(r.Host)
	b.WriteString("\r\n\r\n")
	return b.Bytes()
}

// MaxUDPCRSize is the largest datagram ParseUDPConnectionRequest accepts.
const MaxUDPCRSize = 2048

// ParseUDPConnectionRequest parses a datagram as a UDP connection request
// (CPE side). It accepts LF as well as CRLF line ends and ignores headers;
// the request URI must carry ts, id, un, cn and sig. It does not check the
// signature: see Verify.
func ParseUDPConnectionRequest(data []byte) (UDPConnectionRequest, error) {
	if len(data) > MaxUDPCRSize {
		return UDPConnectionRequest{}, fmt.Errorf("%w: %d bytes", ErrMalformedUDPCR, len(data))
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	fields := strings.Fields(string(line))
	if len(fields) != 3 || fields[0] != http.MethodGet || !strings.HasPrefix(fields[2], "HTTP/1.") {
		return UDPConnectionRequest{}, fmt.Errorf("%w: request line %q", ErrMalformedUDPCR, line)
	}
	u, err := url.Parse(fields[1])
	if err != nil {
		return UDPConnectionRequest{}, fmt.Errorf("%w: %v", ErrMalformedUDPCR, err)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return UDPConnectionRequest{}, fmt.Errorf("%w: query: %v", ErrMalformedUDPCR, err)
	}
	for _, k := range []string{"ts", "id", "un", "cn", "sig"} {
		if len(q[k]) != 1 {
			return UDPConnectionRequest{}, fmt.Errorf("%w: want exactly one %q", ErrMalformedUDPCR, k)
		}
	}
	ts, err := strconv.ParseInt(q.Get("ts"), 10, 64)
	if err != nil {
		return UDPConnectionRequest{}, fmt.Errorf("%w: ts: %v", ErrMalformedUDPCR, err)
	}
	return UDPConnectionRequest{
		Host:      u.Host,
		Timestamp: ts,
		ID:        q.Get("id"),
		Username:  q.Get("un"),
		CNonce:    q.Get("cn"),
		Signature: q.Get("sig"),
	}, nil
}

// Verify checks the signature against password and, when maxSkew > 0,
// that the timestamp is within maxSkew of now (CPE side). The signature is
// compared in constant time and may be in either hex case.
func (r UDPConnectionRequest) Verify(password string, now time.Time, maxSkew time.Duration) error {
	sig, err := hex.DecodeString(r.Signature)
	if err != nil || !hmac.Equal(sig, r.mac(password)) {
		return ErrUDPCRSignature
	}
	if maxSkew > 0 {
		skew := now.Sub(time.Unix(r.Timestamp, 0))
		if skew > maxSkew || skew < -maxSkew {
			return fmt.Errorf("%w: %v off", ErrUDPCRStale, skew)
		}
	}
	return nil
}

// Number and spacing of UDP connection request copies: UDP is lossy and
// the CPE drops duplicates by id, so the same datagram goes out three times.
const (
	udpCRCopies  = 3
	udpCRSpacing = 50 * time.Millisecond
)

// SendUDPConnectionRequest sends a fresh signed UDP connection request to
// addr ("host:port") three times, a little apart, within ctx. conn nil
// dials a fresh UDP socket; pass the STUN server's socket to send from the
// address the CPE's NAT binding expects. It returns an error only when no
// copy could be sent; a CPE sends no reply, so success means "sent".
func SendUDPConnectionRequest(ctx context.Context, conn net.PacketConn, addr, username, password string) error {
	msg := NewUDPConnectionRequest(addr, username, password, time.Now()).Marshal()
	var write func() error
	if conn == nil {
		var d net.Dialer
		c, err := d.DialContext(ctx, "udp", addr)
		if err != nil {
			return fmt.Errorf("%w: UDP connection request to %s: %w", ErrDeviceOffline, addr, err)
		}
		defer c.Close()
		if dl, ok := ctx.Deadline(); ok {
			_ = c.SetWriteDeadline(dl)
		}
		write = func() error { _, err := c.Write(msg); return err }
	} else {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("%w: UDP connection request address %q: %v", ErrInvalidCRURL, addr, err)
		}
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil || len(ips) == 0 {
			return fmt.Errorf("%w: UDP connection request to %s: resolve: %v", ErrDeviceOffline, addr, err)
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return fmt.Errorf("%w: UDP connection request address %q: port: %v", ErrInvalidCRURL, addr, err)
		}
		to := &net.UDPAddr{IP: ips[0].Unmap().AsSlice(), Port: int(p)}
		write = func() error { _, err := conn.WriteTo(msg, to); return err }
	}

	if err := ctx.Err(); err != nil {
		return fmt.Errorf("UDP connection request to %s: %w", addr, err)
	}
	sent := 0
	var lastErr error
	for i := 0; i < udpCRCopies; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				if sent > 0 {
					// A copy is out; a caller giving up does not undo it.
					return nil
				}
				return fmt.Errorf("%w: UDP connection request to %s: %w", ErrDeviceOffline, addr, lastErr)
			case <-time.After(udpCRSpacing):
			}
		}
		if err := write(); err != nil {
			lastErr = err
			continue
		}
		sent++
	}
	if sent == 0 {
		return fmt.Errorf("%w: UDP connection request to %s: %w", ErrDeviceOffline, addr, lastErr)
	}
	return nil
}
