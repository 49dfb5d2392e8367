package sim

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/pion/stun/v3"
)

// crRealm is the digest realm of the connection-request listener.
const crRealm = "EdgeSim CPE"

// nonceLifetime bounds how long a connection-request nonce is accepted.
const nonceLifetime = 5 * time.Minute

// udpMaxSkew is how far a UDP connection request's ts may be from now.
const udpMaxSkew = 5 * time.Minute

// stunRefresh is how often the STUN binding is refreshed (keep-alive).
const stunRefresh = 30 * time.Second

// listen opens the connection-request sockets so their addresses can go
// into the devices' ConnectionRequestURL before the fleet starts.
func (f *Fleet) listen() error {
	ln, err := net.Listen("tcp", f.cfg.CRAddr)
	if err != nil {
		return fmt.Errorf("connection-request listener on %s: %w", f.cfg.CRAddr, err)
	}
	f.crLn = ln
	f.crAddr = ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{token}", f.handleCR)
	f.crSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 30 * time.Second}
	if f.cfg.UDPCRAddr != "" {
		pc, err := net.ListenPacket("udp", f.cfg.UDPCRAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("UDP connection-request socket on %s: %w", f.cfg.UDPCRAddr, err)
		}
		f.udp = pc
		f.udpAddr = pc.LocalAddr().String()
	}
	return nil
}

// serve starts the listeners' goroutines; they end when ctx does or Close
// closes the sockets.
func (f *Fleet) serve(ctx context.Context) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		if err := f.crSrv.Serve(f.crLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			f.log.Error("sim: connection-request listener stopped", "err", err)
		}
	}()
	if f.udp == nil {
		return
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.udpLoop()
	}()
	if f.cfg.STUNServer != "" {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.stunLoop(ctx)
		}()
	}
}

func (f *Fleet) closeListeners() error {
	var errs []error
	if f.crSrv != nil {
		// A connection request is answered at once, so a short grace is
		// plenty. What can outlast it is a connection an ACS's HTTP client
		// dialed and never used (net/http's Shutdown waits 5 s for those):
		// close it, there is nothing in flight to lose.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := f.crSrv.Shutdown(ctx); err != nil {
			if cerr := f.crSrv.Close(); cerr != nil {
				errs = append(errs, fmt.Errorf("close connection-request listener: %w", cerr))
			}
		}
		// Shutdown closes the listener only if Serve ran.
		f.crLn.Close()
	}
	if f.udp != nil {
		f.udp.Close()
	}
	return errors.Join(errs...)
}

// newNonce returns a stateless nonce: issue time and an HMAC over it, so
// any nonce the fleet issued in the last nonceLifetime verifies without a
// table of outstanding nonces for 10,000 devices.
func (f *Fleet) newNonce(now time.Time) string {
	ts := strconv.FormatInt(now.Unix(), 16)
	return ts + "-" + f.nonceMAC(ts)
}

func (f *Fleet) nonceMAC(ts string) string {
	m := hmac.New(sha256.New, f.nonceKey)
	m.Write([]byte(ts))
	return hex.EncodeToString(m.Sum(nil))[:24]
}

// nonceValid reports whether nonce is one of ours and fresh.
func (f *Fleet) nonceValid(nonce string, now time.Time) (valid, stale bool) {
	ts, mac, ok := strings.Cut(nonce, "-")
	if !ok || !hmac.Equal([]byte(mac), []byte(f.nonceMAC(ts))) {
		return false, false
	}
	sec, err := strconv.ParseInt(ts, 16, 64)
	if err != nil {
		return false, false
	}
	age := now.Sub(time.Unix(sec, 0))
	if age < -time.Minute || age > nonceLifetime {
		return false, true
	}
	return true, false
}

// handleCR answers a connection request for the device named by the path:
// 401 with a Digest challenge until the ACS proves the device's
// ConnectionRequestUsername/Password, then 200 and a session.
func (f *Fleet) handleCR(w http.ResponseWriter, r *http.Request) {
	d, ok := f.byToken[r.PathValue("token")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	now := time.Now()
	user, pass := d.connectionRequestCredentials()
	challenge := func(stale bool) {
		ch := cwmp.DigestChallenge{Realm: crRealm, Nonce: f.newNonce(now), QOP: "auth", Algorithm: cwmp.DigestMD5, Stale: stale}
		w.Header().Set("WWW-Authenticate", ch.String())
		w.WriteHeader(http.StatusUnauthorized)
	}
	h := r.Header.Get("Authorization")
	if !strings.HasPrefix(strings.ToLower(h), "digest ") {
		challenge(false)
		return
	}
	a, err := cwmp.ParseDigestAuthorization(h)
	if err != nil || a.Realm != crRealm || a.URI != r.URL.RequestURI() || a.Username != user {
		challenge(false)
		return
	}
	valid, stale := f.nonceValid(a.Nonce, now)
	if !a.Verify(r.Method, pass) {
		challenge(false)
		return
	}
	if !valid {
		challenge(stale)
		return
	}
	if !d.wakeOnline() {
		// Rebooting: a real device would not answer at all; 503 is what
		// the spec lets a CPE say when it will not start a session.
		http.Error(w, "rebooting", http.StatusServiceUnavailable)
		return
	}
	f.stats.crs.Add(1)
	w.WriteHeader(http.StatusOK)
}

// udpLoop reads TR-111 connection requests (and STUN replies) until the
// socket is closed.
func (f *Fleet) udpLoop() {
	buf := make([]byte, 2048)
	for {
		n, _, err := f.udp.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				f.log.Error("sim: UDP connection-request socket", "err", err)
			}
			return
		}
		pkt := buf[:n]
		if stun.IsMessage(pkt) {
			f.handleSTUN(pkt)
			continue
		}
		f.handleUDPCR(pkt, time.Now())
	}
}

// handleUDPCR verifies one UDP connection request against every device
// whose ConnectionRequestUsername is un, and wakes the one whose password
// signs it. Duplicates (the ACS sends each message several times) are
// dropped by message id.
func (f *Fleet) handleUDPCR(pkt []byte, now time.Time) bool {
	req, err := cwmp.ParseUDPConnectionRequest(pkt)
	if err != nil {
		f.log.Debug("sim: bad UDP connection request", "err", err)
		return false
	}
	for _, d := range f.devices {
		user, pass := d.connectionRequestCredentials()
		if user != req.Username {
			continue
		}
		if err := req.Verify(pass, now, udpMaxSkew); err != nil {
			continue
		}
		if !f.seen.add(req.Username+"/"+req.ID, now) {
			return false
		}
		if !d.wakeOnline() {
			return false
		}
		f.stats.crs.Add(1)
		return true
	}
	f.log.Debug("sim: UDP connection request for no device", "un", req.Username)
	return false
}

// stunLoop keeps the UDP socket's NAT binding alive and learned.
func (f *Fleet) stunLoop(ctx context.Context) {
	addr, err := net.ResolveUDPAddr("udp", f.cfg.STUNServer)
	if err != nil {
		f.log.Error("sim: STUN server address", "server", f.cfg.STUNServer, "err", err)
		return
	}
	t := time.NewTicker(stunRefresh)
	defer t.Stop()
	for {
		msg := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
		if _, err := f.udp.WriteTo(msg.Raw, addr); err != nil {
			f.log.Debug("sim: STUN binding request", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// handleSTUN takes the mapped address from a Binding success response and
// reports it as every device's UDPConnectionRequestAddress.
func (f *Fleet) handleSTUN(pkt []byte) {
	m := &stun.Message{Raw: append([]byte(nil), pkt...)}
	if err := m.Decode(); err != nil || m.Type != stun.BindingSuccess {
		return
	}
	var xor stun.XORMappedAddress
	if err := xor.GetFrom(m); err != nil {
		var mapped stun.MappedAddress
		if err := mapped.GetFrom(m); err != nil {
			return
		}
		xor.IP, xor.Port = mapped.IP, mapped.Port
	}
	public := net.JoinHostPort(xor.IP.String(), strconv.Itoa(xor.Port))
	f.mu.Lock()
	changed := public != f.udpAddr
	local := f.udp.LocalAddr().String()
	f.udpAddr = public
	f.mu.Unlock()
	if !changed {
		return
	}
	nat := "false"
	if public != local {
		nat = "true"
	}
	for _, d := range f.devices {
		d.mu.Lock()
		root := d.tree.m.Root
		d.mu.Unlock()
		_ = d.SetLocal(root+"ManagementServer.UDPConnectionRequestAddress", public)
		_ = d.SetLocal(root+"ManagementServer.NATDetected", nat)
	}
}

// recentIDs remembers UDP connection-request ids for udpMaxSkew.
type recentIDs struct {
	mu  sync.Mutex
	ids map[string]time.Time
}

func newRecentIDs() *recentIDs { return &recentIDs{ids: map[string]time.Time{}} }

// add records id and reports whether it was new.
func (r *recentIDs) add(id string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ids) > 1024 {
		for k, t := range r.ids {
			if now.Sub(t) > udpMaxSkew {
				delete(r.ids, k)
			}
		}
	}
	if _, ok := r.ids[id]; ok {
		return false
	}
	r.ids[id] = now
	return true
}
