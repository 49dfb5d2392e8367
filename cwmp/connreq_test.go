package cwmp

import (
	"context"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHTTPConnectionRequestDigest(t *testing.T) {
	for _, alg := range []string{"MD5", "SHA-256"} {
		t.Run(alg, func(t *testing.T) {
			d := &digestServer{realm: "cpe", alg: alg, user: "acs", password: "crpw"}
			srv := newDigestServer(t, d)
			if err := HTTPConnectionRequest(context.Background(), nil, srv.URL+"/cr/8f2a", "acs", "crpw"); err != nil {
				t.Fatalf("connection request: %v", err)
			}
			if req, authed := d.counts(); req != 2 || authed != 1 {
				t.Fatalf("%d requests, %d authed; want 2, 1", req, authed)
			}
		})
	}
}

func TestHTTPConnectionRequestOutcomes(t *testing.T) {
	status := func(code int) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }))
		t.Cleanup(srv.Close)
		return srv.URL + "/"
	}
	basic := newDigestServer(t, &digestServer{realm: "cpe", user: "acs", password: "crpw", basic: true})
	digest := newDigestServer(t, &digestServer{realm: "cpe", alg: "MD5", user: "acs", password: "crpw"})
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return "http://" + addr + "/"
	}()
	tests := []struct {
		name string
		url  string
		pass string
		opts []CROption
		want error
	}{
		{name: "204", url: status(http.StatusNoContent), want: nil},
		{name: "200", url: status(http.StatusOK), want: nil},
		{name: "wrong password", url: digest.URL + "/", pass: "bad", want: ErrCRAuthFailed},
		{name: "basic refused by default", url: basic.URL + "/", want: ErrCRAuthFailed},
		{name: "basic allowed", url: basic.URL + "/", opts: []CROption{AllowBasicAuth()}, want: nil},
		{name: "503 busy", url: status(http.StatusServiceUnavailable), want: ErrDeviceOffline},
		{name: "404", url: status(http.StatusNotFound), want: ErrCRRejected},
		{name: "closed port", url: closed, want: ErrDeviceOffline},
		{name: "ftp URL", url: "ftp://127.0.0.1/", want: ErrInvalidCRURL},
		{name: "no host", url: "http:///path", want: ErrInvalidCRURL},
		{name: "garbage", url: "::not a url", want: ErrInvalidCRURL},
		{name: "empty", url: "", want: ErrInvalidCRURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pass := tt.pass
			if pass == "" {
				pass = "crpw"
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := HTTPConnectionRequest(ctx, nil, tt.url, "acs", pass, tt.opts...)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), pass) {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}

// hangingServer accepts requests and never answers until the test ends.
func hangingServer(t *testing.T) string {
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(func() { close(stop); srv.Close() })
	return srv.URL + "/"
}

func TestHTTPConnectionRequestTimeouts(t *testing.T) {
	url := hangingServer(t)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := HTTPConnectionRequest(ctx, nil, url, "acs", "pw"); !errors.Is(err, ErrDeviceOffline) {
		t.Fatalf("caller deadline: err = %v, want ErrDeviceOffline", err)
	}

	start := time.Now()
	if err := HTTPConnectionRequest(context.Background(), nil, url, "acs", "pw"); !errors.Is(err, ErrDeviceOffline) {
		t.Fatalf("default deadline: err = %v, want ErrDeviceOffline", err)
	}
	if el := time.Since(start); el < DefaultCRTimeout || el > DefaultCRTimeout+3*time.Second {
		t.Fatalf("default deadline took %v, want about %v", el, DefaultCRTimeout)
	}

	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	err := HTTPConnectionRequest(ctx, nil, url, "acs", "pw")
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrDeviceOffline) {
		t.Fatalf("cancelled: err = %v, want context.Canceled only", err)
	}
}

// TestHTTPConnectionRequestRetriesSocketError covers CPEs that drop the
// connection when the authenticated GET arrives: the GET is retried once.
func TestHTTPConnectionRequestRetriesSocketError(t *testing.T) {
	d := &digestServer{realm: "cpe", alg: "MD5", user: "acs", password: "crpw"}
	d.nonces, d.uses = map[string]map[uint64]bool{}, map[string]int{}
	var mu sync.Mutex
	drops := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		drop := r.Header.Get("Authorization") != "" && drops == 0
		if drop {
			drops++
		}
		mu.Unlock()
		if drop {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		d.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	// No keep-alive: net/http's own retry of requests on reused connections
	// must not hide ours.
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	if err := HTTPConnectionRequest(context.Background(), client, srv.URL+"/", "acs", "crpw"); err != nil {
		t.Fatalf("err = %v, want success after one retry", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if _, authed := d.counts(); authed != 1 || drops != 1 {
		t.Fatalf("authed %d drops %d", authed, drops)
	}
}

func TestUDPConnectionRequestFormat(t *testing.T) {
	r := UDPConnectionRequest{Host: "198.51.100.20:40123", Timestamp: 1714551302, ID: "3045120931", Username: "acs-cr", CNonce: "9c2f1e0a7b3d4e55"}
	r.Signature = hexMAC(r, "secret")
	// Computed independently: python3 hmac.new(b'secret', b'1714551302'+b'3045120931'+b'acs-cr'+b'9c2f1e0a7b3d4e55', sha1)
	if r.Signature != "a12588f6248f7b3829a0dffdc8fb6630ba537b00" {
		t.Fatalf("signature %s", r.Signature)
	}
	want := "GET http://198.51.100.20:40123?ts=1714551302&id=3045120931&un=acs-cr&cn=9c2f1e0a7b3d4e55&sig=a12588f6248f7b3829a0dffdc8fb6630ba537b00 HTTP/1.1\r\n" +
		"Host: 198.51.100.20:40123\r\n\r\n"
	if got := string(r.Marshal()); got != want {
		t.Fatalf("Marshal =\n%q\nwant\n%q", got, want)
	}
	back, err := ParseUDPConnectionRequest([]byte(want))
	if err != nil || back != r {
		t.Fatalf("parse: %+v, %v", back, err)
	}
	now := time.Unix(1714551302, 0)
	if err := back.Verify("secret", now.Add(10*time.Second), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	upper := back
	upper.Signature = strings.ToUpper(upper.Signature)
	if err := upper.Verify("secret", now, 0); err != nil {
		t.Fatalf("upper-case signature: %v", err)
	}
}

func hexMAC(r UDPConnectionRequest, password string) string {
	return hex.EncodeToString(r.mac(password))
}

// otherHexDigit is a lower-case hex digit other than d.
func otherHexDigit(d byte) string {
	if d == '0' {
		return "1"
	}
	return "0"
}

func TestUDPConnectionRequestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := NewUDPConnectionRequest("127.0.0.1:7547", "user name&x", "pw", now)
	if r.ID == "" || len(r.CNonce) != 16 || len(r.Signature) != 40 {
		t.Fatalf("fields %+v", r)
	}
	if other := NewUDPConnectionRequest("127.0.0.1:7547", "u", "pw", now); other.ID == r.ID && other.CNonce == r.CNonce {
		t.Fatal("id and cnonce not random")
	}
	parsed, err := ParseUDPConnectionRequest(r.Marshal())
	if err != nil || parsed != r {
		t.Fatalf("round trip with escaped username: %+v, %v", parsed, err)
	}
	tampered := func(f func(*UDPConnectionRequest)) UDPConnectionRequest { c := r; f(&c); return c }
	tests := []struct {
		name string
		r    UDPConnectionRequest
		pass string
		now  time.Time
		want error
	}{
		{name: "good", r: r, pass: "pw", now: now, want: nil},
		{name: "wrong password", r: r, pass: "pw2", now: now, want: ErrUDPCRSignature},
		// A different first digit whatever it was: "00" over the first two
		// changed nothing for one random signature in 256.
		{name: "tampered sig", r: tampered(func(c *UDPConnectionRequest) { c.Signature = otherHexDigit(c.Signature[0]) + c.Signature[1:] }), pass: "pw", now: now, want: ErrUDPCRSignature},
		{name: "non-hex sig", r: tampered(func(c *UDPConnectionRequest) { c.Signature = "zz" }), pass: "pw", now: now, want: ErrUDPCRSignature},
		{name: "tampered id", r: tampered(func(c *UDPConnectionRequest) { c.ID += "1" }), pass: "pw", now: now, want: ErrUDPCRSignature},
		{name: "tampered ts", r: tampered(func(c *UDPConnectionRequest) { c.Timestamp++ }), pass: "pw", now: now, want: ErrUDPCRSignature},
		{name: "stale", r: r, pass: "pw", now: now.Add(2 * time.Minute), want: ErrUDPCRStale},
		{name: "from the future", r: r, pass: "pw", now: now.Add(-2 * time.Minute), want: ErrUDPCRStale},
	}
	for _, tt := range tests {
		if err := tt.r.Verify(tt.pass, tt.now, time.Minute); !errors.Is(err, tt.want) && (err != nil || tt.want != nil) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
	if err := r.Verify("pw", now.Add(24*time.Hour), 0); err != nil {
		t.Fatalf("maxSkew 0 must skip the timestamp check: %v", err)
	}
}

func TestParseUDPConnectionRequestErrors(t *testing.T) {
	for _, in := range []string{
		"",
		"POST http://h:1?ts=1&id=2&un=u&cn=c&sig=s HTTP/1.1\r\n\r\n",
		"GET http://h:1?ts=1&id=2&un=u&cn=c&sig=s\r\n\r\n",
		"GET http://h:1?ts=1&id=2&un=u&cn=c&sig=s FTP/1.0\r\n\r\n",
		"GET http://h:1?id=2&un=u&cn=c&sig=s HTTP/1.1\r\n\r\n",
		"GET http://h:1?ts=x&id=2&un=u&cn=c&sig=s HTTP/1.1\r\n\r\n",
		"GET http://h:1?ts=1&ts=2&id=2&un=u&cn=c&sig=s HTTP/1.1\r\n\r\n",
		"GET http://h:1?ts=1&id=2&un=u&cn=c HTTP/1.1\r\n\r\n",
		"GET http://h:1?ts=1&id=%zz&un=u&cn=c&sig=s HTTP/1.1\r\n\r\n",
		"GET http://[::1?ts=1&id=2&un=u&cn=c&sig=s HTTP/1.1\r\n\r\n",
		"GET http://h:1?ts=1&id=2&un=u&cn=c&sig=" + strings.Repeat("a", MaxUDPCRSize) + " HTTP/1.1\r\n\r\n",
	} {
		if _, err := ParseUDPConnectionRequest([]byte(in)); !errors.Is(err, ErrMalformedUDPCR) {
			t.Errorf("Parse(%.60q) err = %v, want ErrMalformedUDPCR", in, err)
		}
	}
	// LF-only line ends and extra headers are tolerated.
	r, err := ParseUDPConnectionRequest([]byte("GET http://h:1?ts=1&id=2&un=u&cn=c&sig=s HTTP/1.1\nHost: h:1\nX: y\n\n"))
	if err != nil || r.Host != "h:1" || r.Timestamp != 1 || r.Signature != "s" {
		t.Fatalf("LF datagram: %+v, %v", r, err)
	}
}

func readDatagrams(t *testing.T, pc net.PacketConn, n int) ([][]byte, []net.Addr) {
	t.Helper()
	var msgs [][]byte
	var from []net.Addr
	buf := make([]byte, 4096)
	if err := pc.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for len(msgs) < n {
		k, addr, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", len(msgs), err)
		}
		msgs = append(msgs, append([]byte(nil), buf[:k]...))
		from = append(from, addr)
	}
	return msgs, from
}

func TestSendUDPConnectionRequest(t *testing.T) {
	cpe, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer cpe.Close()
	addr := cpe.LocalAddr().String()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	before := time.Now()
	if err := SendUDPConnectionRequest(ctx, nil, addr, "acs", "crpw"); err != nil {
		t.Fatal(err)
	}
	msgs, _ := readDatagrams(t, cpe, udpCRCopies)
	for i, m := range msgs {
		if string(m) != string(msgs[0]) {
			t.Fatalf("copy %d differs: %q vs %q", i, m, msgs[0])
		}
	}
	r, err := ParseUDPConnectionRequest(msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	if r.Host != addr || r.Username != "acs" {
		t.Fatalf("request %+v", r)
	}
	if err := r.Verify("crpw", before, 5*time.Second); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if err := r.Verify("other", before, 5*time.Second); !errors.Is(err, ErrUDPCRSignature) {
		t.Fatalf("wrong password: %v", err)
	}

	// From a given socket (the STUN server's), the source address is that socket's.
	stun, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stun.Close()
	if err := SendUDPConnectionRequest(ctx, stun, addr, "acs", "crpw"); err != nil {
		t.Fatal(err)
	}
	_, from := readDatagrams(t, cpe, udpCRCopies)
	for _, a := range from {
		if a.String() != stun.LocalAddr().String() {
			t.Fatalf("sent from %s, want %s", a, stun.LocalAddr())
		}
	}
}

func TestSendUDPConnectionRequestErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := SendUDPConnectionRequest(ctx, nil, "127.0.0.1:9", "u", "p"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, addr := range []string{"no-port", "127.0.0.1:http-ish", "127.0.0.1:99999"} {
		if err := SendUDPConnectionRequest(context.Background(), pc, addr, "u", "p"); !errors.Is(err, ErrInvalidCRURL) {
			t.Errorf("address %q: err = %v, want ErrInvalidCRURL", addr, err)
		}
	}
	if err := SendUDPConnectionRequest(context.Background(), nil, "no-port", "u", "p"); !errors.Is(err, ErrDeviceOffline) {
		t.Errorf("dial bad address: %v", err)
	}
}

func FuzzParseUDPConnectionRequest(f *testing.F) {
	f.Add([]byte("GET http://198.51.100.20:40123?ts=1714551302&id=3045120931&un=acs-cr&cn=9c2f1e0a7b3d4e55&sig=a12588f6248f7b3829a0dffdc8fb6630ba537b00 HTTP/1.1\r\nHost: 198.51.100.20:40123\r\n\r\n"))
	f.Add([]byte("GET http://h?ts=1&id=&un=%20&cn=&sig= HTTP/1.0\n"))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseUDPConnectionRequest(data)
		if err != nil {
			return
		}
		_ = r.Verify("pw", time.Unix(r.Timestamp, 0), time.Second)
		// What parses must survive its own rendering when the host is sane.
		if strings.ContainsAny(r.Host, " \r\n?#/") || r.Host == "" {
			return
		}
		back, err := ParseUDPConnectionRequest(r.Marshal())
		if err != nil {
			if len(r.Marshal()) > MaxUDPCRSize {
				return
			}
			t.Fatalf("re-parse of %q: %v", r.Marshal(), err)
		}
		if back != r {
			t.Fatalf("round trip %+v → %+v", r, back)
		}
	})
}
