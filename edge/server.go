package edge

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
)

// Session outcomes, the label of Metrics.Sessions.
const (
	outcomeCompleted = "completed"
	outcomeTimeout   = "timeout"
	outcomeReplaced  = "replaced"
	outcomeDropped   = "dropped"
	outcomeError     = "error"
)

// fileWriteTimeout bounds one file download to a CPE.
const fileWriteTimeout = 30 * time.Minute

// cookieName is the session cookie. GenieACS uses "session" too, so CPE
// firmware tested against it behaves the same here.
const cookieName = "session"

// Shared header values: net/http never mutates them, so one slice serves
// every response and the hot path allocates none.
var (
	hdrXML        = []string{`text/xml; charset="utf-8"`}
	hdrRetryAfter = []string{"60"}
	hdrClose      = []string{"close"}
	// hdrRetryAfterFile is shorter: a fetch from the core often takes
	// seconds, not minutes.
	hdrRetryAfterFile = []string{"30"}
)

// Server is the CWMP endpoint of an edge: it terminates CPE sessions over
// HTTP(S), authenticates CPEs, drives each session's work from the cache and
// serves files to CPEs. It implements http.Handler.
type Server struct {
	cfg     Config
	cache   *Cache
	files   *FileStore
	auth    *authenticator
	metrics *Metrics
	log     *slog.Logger
	sessCfg cwmp.SessionConfig
	decoder cwmp.Decoder

	sessions shardedMap[*session] // by cookie
	byDevice shardedMap[*session] // by device ID
	open     atomic.Int64
	draining atomic.Bool
	// drained is closed when draining starts: a lingering session stops
	// waiting for a follow-up then (see drain).
	drained   chan struct{}
	drainOnce sync.Once
	// preauth bounds each source address's requests in flight before
	// they are authenticated (Config.MaxUnauthenticatedPerIP).
	preauth inflightLimiter
	// adm admits or refuses new sessions (admission.go).
	adm *admission

	bufs sync.Pool // *bytes.Buffer for request bodies

	// conns tracks the open CPE connections (connContext, connState), so
	// that a CPE that ignores the session cookie is followed on its
	// keep-alive connection. Freed when the connection closes.
	connMu sync.Mutex
	conns  map[net.Conn]*connTrack
	// bad keeps each device's last unreadable message and rate-limits
	// the log lines about them.
	bad *badMessages

	// beforeEnd, when set (tests only, before the node runs), is called
	// as a session ends, after its last look at the device's tasks and
	// before its results are committed.
	beforeEnd func(deviceID string)
}

// session is one live CWMP session. mu serialises the requests of a
// session (a well-behaved CPE sends one at a time, a buggy one must not
// corrupt the state machine) and the janitor.
type session struct {
	mu       sync.Mutex
	cookie   string
	deviceID string
	cs       *cwmp.Session
	work     *SessionWork
	// who authenticated the Inform, and whether the device has
	// credentials of its own: a request that sends Authorization again
	// must authenticate as someone who may speak for deviceID too.
	who      identity
	ownCreds bool
	timeout  time.Duration
	started  time.Time
	last     atomic.Int64 // unix nanoseconds of the last request
	closed   bool         // finished; a request still holding the cookie gets 400
	// end holds the connection requests waiting for the session to end
	// (AfterSession); it has a lock of its own so that they never wait
	// on a request the session is busy with.
	end endWatch
	// conn is the connection the Inform came on (nil outside a real
	// HTTP server): requests on it without a cookie belong to this
	// session until it ends. Set before the session is published.
	conn *connTrack
}

// connTrack is what the edge knows of one CPE connection: the session
// whose Inform it carried, while that session lives. Most CPEs keep the
// session cookie; some ignore Set-Cookie and keep their session on the
// keep-alive connection instead (GenieACS follows a session by its socket
// for them too). A cookie, when sent, always wins.
type connTrack struct {
	sess atomic.Pointer[session]
}

// connKey is the request-context key of a request's *connTrack.
type connKey struct{}

// connContext is the CWMP http.Server's ConnContext: it gives each
// connection its tracker.
func (s *Server) connContext(ctx context.Context, c net.Conn) context.Context {
	ct := &connTrack{}
	s.connMu.Lock()
	s.conns[c] = ct
	s.connMu.Unlock()
	return context.WithValue(ctx, connKey{}, ct)
}

// connState is the CWMP http.Server's ConnState: a closed (or hijacked)
// connection's tracker is forgotten and lets go of its session at once,
// rather than when the connection's last reference goes.
func (s *Server) connState(c net.Conn, st http.ConnState) {
	if st != http.StateClosed && st != http.StateHijacked {
		return
	}
	s.connMu.Lock()
	ct := s.conns[c]
	delete(s.conns, c)
	s.connMu.Unlock()
	if ct != nil {
		ct.sess.Store(nil)
	}
}

// LastBadMessage returns the last message from device that the edge could
// not fully read since it started (see BadMessage).
func (s *Server) LastBadMessage(device string) (BadMessage, bool) { return s.bad.get(device) }

func (s *session) touch(now time.Time) { s.last.Store(now.UnixNano()) }

// newServer builds the CWMP handler. The configuration must be validated.
func newServer(cfg Config, cache *Cache, files *FileStore, m *Metrics, log *slog.Logger) *Server {
	s := &Server{
		cfg:     cfg,
		cache:   cache,
		files:   files,
		auth:    newAuthenticator(cfg, cache, m, log),
		metrics: m,
		log:     log,
		sessCfg: cwmp.SessionConfig{HoldRequests: cfg.HoldRequests},
		decoder: cwmp.Decoder{MaxSize: int(cfg.MaxBodyBytes)},
	}
	s.drained = make(chan struct{})
	s.conns = make(map[net.Conn]*connTrack)
	s.bad = newBadMessages(log)
	s.sessions.init()
	s.byDevice.init()
	s.preauth = inflightLimiter{m: make(map[string]int), max: cfg.MaxUnauthenticatedPerIP}
	if s.preauth.max <= 0 {
		s.preauth.max = DefaultMaxUnauthenticatedPerIP
	}
	s.bufs.New = func() any { return bytes.NewBuffer(make([]byte, 0, 16<<10)) }
	s.adm = newAdmission(cfg.MaxConcurrentSessions, cfg.maxBusy, cfg.retryAfterMin, cfg.retryAfterMax, m.Storm)
	s.adm.refused503 = m.HTTPErrors.WithLabelValues(strconv.Itoa(http.StatusServiceUnavailable))
	return s
}

// drain starts the shutdown: new sessions are refused, and sessions that
// linger for a follow-up end now.
func (s *Server) drain() {
	s.draining.Store(true)
	s.drainOnce.Do(func() { close(s.drained) })
}

// OpenSessions reports the number of live sessions.
func (s *Server) OpenSessions() int { return int(s.open.Load()) }

// ServeHTTP routes CWMP POSTs (any path) and file downloads.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		s.serveCWMP(w, r)
	case http.MethodGet, http.MethodHead:
		if name, ok := strings.CutPrefix(r.URL.Path, "/files/"); ok && name != "" {
			s.serveFile(w, r, name)
			return
		}
		s.httpError(w, http.StatusNotFound, "not found")
	default:
		w.Header().Set("Allow", "POST, GET, HEAD")
		s.httpError(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}

func (s *Server) httpError(w http.ResponseWriter, code int, msg string) {
	s.metrics.HTTPErrors.WithLabelValues(strconv.Itoa(code)).Inc()
	http.Error(w, msg, code)
}

// serveFile streams a stored file; http.ServeContent handles Range and
// conditional requests, so a CPE can resume an interrupted firmware download.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, name string) {
	if s.cfg.FilesAuthOn() && !s.authorizeFile(w, r, name) {
		return
	}
	f, meta, err := s.files.Open(name)
	if err != nil {
		if errors.Is(err, ErrFileNotReady) {
			// The content is still crossing the backhaul (Open started
			// the fetch). Sessions hold a Download until its file is
			// here, so only a CPE that asks on its own gets this (a URL
			// from an earlier task, a file replaced since). 503 with
			// Retry-After is HTTP's "come back later", which a CPE that
			// retries downloads honours; holding the request open instead
			// would tie the CPE's transfer timeout to the backhaul's speed.
			w.Header()["Retry-After"] = hdrRetryAfterFile
			s.httpError(w, http.StatusServiceUnavailable, "file is being fetched from the core; retry later")
			return
		}
		if errors.Is(err, ErrNotFound) {
			s.httpError(w, http.StatusNotFound, "no such file")
			return
		}
		s.log.Error("open file for CPE", "file", name, "err", err)
		s.httpError(w, http.StatusInternalServerError, "cannot open file")
		return
	}
	defer f.Close()
	// A firmware image over a slow access line takes longer than the
	// listener's write timeout, which is sized for SOAP replies; a dead
	// client is still cut off eventually.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(fileWriteTimeout))
	w.Header().Set("Content-Type", "application/octet-stream")
	if meta.SHA256 != "" {
		w.Header().Set("ETag", `"`+meta.SHA256+`"`)
	}
	if meta.Version != "" {
		// The version the file installs, as uploaded: the simulator (and
		// any test CPE) installs it, so a rollout sees the device come back
		// on it whatever the file is called.
		w.Header().Set("X-Firmware-Version", meta.Version)
	}
	http.ServeContent(w, r, name, meta.Uploaded, f)
}

// authorizeFile decides whether r may have the file name (files_auth): a
// URL the edge signed into a Download, or else CPE credentials (any CPE's:
// files are not per device). On refusal it writes the response.
func (s *Server) authorizeFile(w http.ResponseWriter, r *http.Request, name string) bool {
	now := time.Now()
	q := r.URL.Query()
	if q.Has("sig") {
		if err := s.cache.verifyFileURL(name, q, now); err != nil {
			// Not counted as an authentication failure: a 128-bit HMAC
			// is not guessed, and a CPE retrying an expired URL must not
			// lock its address (and its neighbours') out of CWMP.
			s.log.Info("file request refused", "file", name, "ip", remoteIP(r.RemoteAddr), "err", err)
			s.httpError(w, http.StatusForbidden, "file URL not signed or expired")
			return false
		}
		return true
	}
	if !s.auth.enabled() {
		s.httpError(w, http.StatusForbidden, "files are served on signed URLs only")
		return false
	}
	ip := remoteIP(r.RemoteAddr)
	if s.auth.blocked(ip, now) {
		s.refuseBlocked(w)
		return false
	}
	if !s.preauth.acquire(ip) {
		s.refuseUnauthenticated(w)
		return false
	}
	defer s.preauth.release(ip)
	_, ok := s.auth.authenticate(w, r, ip, now, nil)
	return ok
}

// refuseUnauthenticated answers a request over its address's limit of
// unauthenticated requests in flight, and drops the connection.
func (s *Server) refuseUnauthenticated(w http.ResponseWriter) {
	w.Header()["Connection"] = hdrClose
	w.Header()["Retry-After"] = hdrRetryAfter
	s.httpError(w, http.StatusTooManyRequests, "too many unauthenticated requests from this address")
}

func (s *Server) refuseBlocked(w http.ResponseWriter) {
	w.Header()["Connection"] = hdrClose
	w.Header()["Retry-After"] = hdrRetryAfter
	s.httpError(w, http.StatusTooManyRequests, "too many failed authentications")
}

// serveCWMP handles one POST of a CWMP session.
func (s *Server) serveCWMP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	ip := remoteIP(r.RemoteAddr)
	if s.auth.blocked(ip, now) {
		s.refuseBlocked(w)
		return
	}
	sess, cookieSent := s.lookup(r)
	byConn := false
	if sess == nil && !cookieSent {
		// A CPE that ignores Set-Cookie: its session is the one whose
		// Inform came on this keep-alive connection, if it still lives.
		if ct, ok := r.Context().Value(connKey{}).(*connTrack); ok {
			if cs := ct.sess.Load(); cs != nil {
				sess, byConn = cs, true
			}
		}
	}
	held := false // a new session's request handed a request slot by the queue
	if sess != nil {
		defer s.enter()()
		defer s.adm.observe(now)
	} else {
		exit, wait := s.enterNew(r)
		defer exit()
		now = time.Now() // after its wait in the queue
		if wait == slotOverflow {
			s.refuseFull(w)
			return
		}
		held = wait == slotHeld
	}
	if sess == nil && s.full(ip, held, now) {
		s.refuseFull(w)
		return
	}

	// Authenticate from the headers alone, before a byte of the body is
	// read: a client without credentials costs no body, no decompression
	// and no parse. A request with a live session's cookie is bound by the
	// cookie; one that sends Authorization anyway is checked all the same.
	var who identity
	authed := false
	if s.auth.enabled() && (sess == nil || r.Header.Get("Authorization") != "") {
		// Only a request that opens a session counts against its address's
		// unauthenticated bound: one inside a live session (its cookie)
		// that re-sends credentials, as digest clients do pre-emptively,
		// is already known, and refusing it would break the session.
		capped := sess == nil
		if capped && !s.preauth.acquire(ip) {
			s.refuseUnauthenticated(w)
			return
		}
		var opened *identity
		if sess != nil {
			opened = &sess.who // set before the session was published, never changed
		}
		var ok bool
		who, ok = s.auth.authenticate(w, r, ip, now, opened)
		if capped {
			s.preauth.release(ip)
		}
		if !ok {
			drainRefused(w, r)
			return
		}
		authed = true
	} else if sess == nil {
		// No CPE authentication at all: the request stays unauthenticated
		// while its body is read and parsed, which is what the per-address
		// bound is for.
		if !s.preauth.acquire(ip) {
			s.refuseUnauthenticated(w)
			return
		}
		defer s.preauth.release(ip)
	}

	buf := s.bufs.Get().(*bytes.Buffer)
	defer s.putBuf(buf)
	if code, err := s.readBody(r, buf); err != nil {
		if code != http.StatusRequestEntityTooLarge {
			s.badMessage(r, sess, who, nil, nil, BadRejected, "bad_encoding", err.Error(), now)
		}
		s.httpError(w, code, err.Error())
		return
	}
	var env *cwmp.Envelope
	if body := buf.Bytes(); !isBlank(body) {
		var err error
		// The HTTP charset matters to a document that declares none
		// (Thomson/Technicolor's ISO-8859-1 bodies).
		env, err = s.decoder.DecodeCharset(body, cwmp.CharsetFromContentType(r.Header.Get("Content-Type")))
		if err != nil {
			s.badMessage(r, sess, who, nil, body, BadRejected, rejectReason(err), err.Error(), now)
			if errors.Is(err, cwmp.ErrUnknownMethod) && env != nil {
				s.writeEnvelope(w, &cwmp.Envelope{Namespace: env.Namespace, ID: env.ID, HasID: true,
					Body: cwmp.NewFault(cwmp.FaultACSMethodNotSupported, "")})
				return
			}
			s.httpError(w, http.StatusBadRequest, "malformed CWMP envelope: "+err.Error())
			return
		}
		// Identifiers become cache keys: refuse oversized ones here,
		// before anything is stored.
		if err := checkLimits(env); err != nil {
			s.badMessage(r, sess, who, env, body, BadRejected, rejectReason(err), err.Error(), now)
			s.httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		if env.SkippedTotal > 0 {
			s.badMessage(r, sess, who, env, body, BadPartial, env.Skipped[0].Reason, skippedSummary(env), now)
		}
	}

	if env != nil {
		if inf, ok := env.Body.(*cwmp.Inform); ok {
			if byConn {
				// The connection's session does not bind an Inform: a
				// new session starts whatever device it is for.
				sess = nil
			}
			s.startSession(w, r, env, inf, sess, who, authed, held, ip, now)
			return
		}
	}
	if sess == nil {
		s.httpError(w, http.StatusBadRequest, "no session: a CWMP session starts with an Inform")
		return
	}
	if authed && !who.mayBe(sess.deviceID, sess.ownCreds) {
		s.auth.fail(w, ip, now, "wrong_device")
		return
	}

	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.closed {
		s.httpError(w, http.StatusBadRequest, "no session: the session has ended")
		return
	}
	sess.touch(now)
	step, err := sess.cs.Receive(env)
	if err != nil {
		s.httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if step.Request != nil {
		if err := sess.work.CPERequest(step.Request); err != nil {
			s.finishLocked(sess, false, outcomeError, now)
			s.storeFailure(w, err, "cannot record request", "device", sess.deviceID, "method", step.Request.Method())
			return
		}
	}
	if a := step.Answer; a != nil {
		sess.work.Answer(a)
		outcome := "ok"
		switch {
		case a.Empty:
			outcome = "empty"
		case a.Mismatch:
			outcome = "invalid_response"
		case a.Response != nil && a.Response.Method() == cwmp.MethodFault:
			outcome = "fault"
		}
		s.metrics.TaskRPCs.WithLabelValues(a.Request.Method(), outcome).Inc()
	}
	if step.Reply != nil {
		s.writeEnvelope(w, step.Reply)
		return
	}
	next := sess.work.Next()
	if next == nil {
		next = s.linger(r.Context(), sess)
	}
	out := sess.cs.Next(next)
	if out == nil {
		if err := s.finishLocked(sess, true, outcomeCompleted, now); err != nil {
			s.storeFailure(w, err, "cannot commit session")
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	s.writeEnvelope(w, out)
}

// startSession handles an Inform: it identifies and authenticates the
// device, records the Inform durably, then answers InformResponse with a
// fresh session cookie.
//
// who and authed are what serveCWMP's header check found: the Inform's
// DeviceId must be a device those credentials may speak for, so one
// device's own credentials (or a header captured from its session) cannot
// open a session as another device, and the shared credentials do not let
// in a device that has credentials of its own. held: the admission queue
// handed the request a request slot (see admit).
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, env *cwmp.Envelope, inf *cwmp.Inform, prev *session, who identity, authed, held bool, ip string, now time.Time) {
	id := inf.DeviceId
	deviceID, err := fleet.DeviceID(id.OUI, id.ProductClass, id.SerialNumber)
	if err != nil {
		s.httpError(w, http.StatusBadRequest, "bad DeviceId in Inform: "+err.Error())
		return
	}
	if prev != nil && prev.deviceID != deviceID {
		s.httpError(w, http.StatusBadRequest, "session cookie belongs to another device")
		return
	}

	ownCreds := false
	if s.auth.enabled() {
		switch {
		case !authed:
			// An Inform with a live session's cookie and no credentials
			// (serveCWMP checked any it had): a new session needs its own
			// authentication, so this is the first leg of one.
			s.auth.authenticate(w, r, ip, now, nil)
			return
		case !who.fresh:
			// Accepted on the old session's nonce, which only binds that
			// session's own requests.
			s.auth.challenge(w, now, true)
			return
		}
		if slices.Contains(who.devices, deviceID) {
			ownCreds = true
		} else {
			// Pre-provisioned credentials count from the first Inform:
			// they are looked up by device, not through a device record
			// that does not exist yet.
			has, err := s.cache.hasCredentials(deviceID)
			if err != nil {
				s.log.Error("load device credentials", "device", deviceID, "err", err)
				s.httpError(w, http.StatusInternalServerError, "cannot load device credentials")
				return
			}
			if !who.mayBe(deviceID, has) {
				reason := "wrong_device"
				if who.shared {
					reason = "device_has_own_credentials"
				}
				s.auth.fail(w, ip, now, reason)
				return
			}
			ownCreds = has
		}
	}

	// A device has at most one session: a new Inform means the old one was
	// abandoned by the CPE. End it first so its work cannot overwrite what
	// the new session records.
	old, replacing := s.byDevice.load(deviceID)
	release, ok := s.admit(w, inf, deviceID, replacing, held, now)
	if !ok {
		return
	}
	defer release() // the session is counted open by then, or given up

	cs := cwmp.NewSession(s.sessCfg)
	step, err := cs.Receive(env)
	if err != nil {
		s.httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if cs.State() == cwmp.StateEnded {
		// Version fault 8006: answer it, record nothing.
		s.writeEnvelope(w, step.Reply)
		return
	}
	if replacing {
		old.mu.Lock()
		if !old.closed {
			s.finishLocked(old, false, outcomeReplaced, now)
		}
		old.mu.Unlock()
	}

	work, err := s.cache.BeginSession(inf, InformMeta{RemoteAddr: r.RemoteAddr, FilesBaseURL: s.filesBaseURL(r), SignFileURLs: s.cfg.FilesAuthOn(), Now: now})
	if err != nil {
		s.storeFailure(w, err, "cannot record inform", "device", deviceID)
		return
	}
	// The CPE may ask for a shorter idle timeout, never a longer one: a
	// CPE asking for 4294967295 s would otherwise hold its slot of
	// MaxConcurrentSessions for good.
	timeout := s.cfg.SessionTimeout
	if t := time.Duration(env.SessionTimeout) * time.Second; t > 0 && t < timeout {
		timeout = t
	}
	ct, _ := r.Context().Value(connKey{}).(*connTrack)
	sess := &session{
		cookie:   newSessionID(),
		deviceID: deviceID,
		cs:       cs,
		work:     work,
		who:      who,
		ownCreds: ownCreds,
		timeout:  timeout,
		started:  now,
		conn:     ct,
	}
	sess.touch(now)
	s.sessions.store(sess.cookie, sess)
	if prevDev, ok := s.byDevice.swap(deviceID, sess); ok && prevDev != old {
		// Two Informs of one device raced; the loser is ended like any replaced session.
		prevDev.mu.Lock()
		if !prevDev.closed {
			s.finishLocked(prevDev, false, outcomeReplaced, now)
		}
		prevDev.mu.Unlock()
	}
	s.metrics.OpenSessions.Set(float64(s.open.Add(1)))
	if ct != nil {
		// Requests on this connection without a cookie are this
		// session's from now on (a session of another device that
		// came on it before is no longer reachable this way).
		ct.sess.Store(sess)
	}

	w.Header()["Set-Cookie"] = []string{cookieName + "=" + sess.cookie + "; Path=/; HttpOnly"}
	s.writeEnvelope(w, step.Reply)
}

// linger is called (sess.mu held) when a session has nothing left to
// send. When an API client waited for a task the session just finished,
// or the core asked for it now (SessionWork.Lingering), an operator is at
// work on the device and the
// next task is likely a few milliseconds away; ending the session now
// would make that task wait for a connection request and a new session.
// So the results are committed (the client gets its answer), and the
// CPE's request is held for at most Config.SessionLinger for a task
// queued meanwhile, which then runs in this session: the RPC to send.
// nil ends the session as before. The hold is bounded, happens only
// after a waited-for task, and ends at once when the CPE hangs up or the
// edge shuts down; a periodic session with nobody waiting never lingers.
func (s *Server) linger(ctx context.Context, sess *session) cwmp.Message {
	w := sess.work
	if s.cfg.SessionLinger <= 0 || s.draining.Load() || !w.Lingering() {
		return nil
	}
	if err := w.Checkpoint(time.Now()); err != nil {
		// End commits the same again and reports it.
		s.log.Warn("cannot commit a session's results before holding it open", "device", sess.deviceID, "err", err)
		return nil
	}
	t := time.NewTimer(s.cfg.SessionLinger)
	defer t.Stop()
	for {
		// Watch before looking, so a task queued in between is seen.
		watch := s.cache.watchQueue(sess.deviceID)
		// A task queued while the session waited starts now, not when
		// the hold began: its times (a diagnostic's timeout counts from
		// when it was sent) must not predate its queueing.
		w.restamp(time.Now())
		if m := w.Next(); m != nil {
			s.cache.unwatchQueue(sess.deviceID, watch)
			s.metrics.SessionLingers.WithLabelValues("task").Inc()
			return m
		}
		select {
		case <-watch:
			continue
		case <-t.C:
		case <-ctx.Done():
		case <-s.drained:
		}
		s.cache.unwatchQueue(sess.deviceID, watch)
		s.metrics.SessionLingers.WithLabelValues("idle").Inc()
		return nil
	}
}

// finishLocked ends a session (sess.mu held): it commits or abandons the
// work and forgets the session.
func (s *Server) finishLocked(sess *session, completed bool, outcome string, now time.Time) error {
	if sess.closed {
		return nil
	}
	sess.closed = true
	s.sessions.delete(sess.cookie, sess)
	if sess.conn != nil {
		// The connection may carry a new session next; until then a
		// request on it without a cookie finds none.
		sess.conn.sess.CompareAndSwap(sess, nil)
	}
	sess.end.finish()
	if s.beforeEnd != nil {
		s.beforeEnd(sess.deviceID)
	}
	if outcome == outcomeTimeout || outcome == outcomeReplaced {
		sess.work.cpeLost()
	}
	err := sess.work.End(completed)
	// The device's session stays findable (AfterSession) until its results
	// are committed, the connection-request credentials it set among them:
	// a connection request that finds no session then finds those.
	waiting := sess.end.close()
	s.byDevice.delete(sess.deviceID, sess)
	s.sessionEnded(sess, outcome, waiting)
	// Counted open until its work is committed: whoever waits for no open
	// sessions (shutdown, tests) then sees every result stored.
	s.metrics.OpenSessions.Set(float64(s.open.Add(-1)))
	if err != nil {
		if !isStoreError(err) { // the store guard logs those, once per interval
			s.log.Error("end session", "device", sess.deviceID, "completed", completed, "err", err)
		}
		outcome = outcomeError
	}
	s.metrics.Sessions.WithLabelValues(outcome).Inc()
	if completed && err == nil {
		s.metrics.SessionDuration.Observe(now.Sub(sess.started).Seconds())
	}
	if err != nil {
		return fmt.Errorf("end session of %s: %w", sess.deviceID, err)
	}
	return nil
}

// expire ends the sessions idle for longer than their timeout and reports
// how many it ended. A session busy in a request is skipped: its request
// refreshes its activity anyway.
func (s *Server) expire(now time.Time) int {
	n := 0
	s.sessions.each(func(sess *session) {
		if now.Sub(time.Unix(0, sess.last.Load())) <= sess.timeout {
			return
		}
		if !sess.mu.TryLock() {
			return
		}
		if !sess.closed && now.Sub(time.Unix(0, sess.last.Load())) > sess.timeout {
			s.finishLocked(sess, false, outcomeTimeout, now)
			n++
		}
		sess.mu.Unlock()
	})
	return n
}

// abandonAll ends every remaining session as dropped (shutdown).
func (s *Server) abandonAll() {
	now := time.Now()
	s.sessions.each(func(sess *session) {
		sess.mu.Lock()
		s.finishLocked(sess, false, outcomeDropped, now)
		sess.mu.Unlock()
	})
}

// lookup finds the session named by the request's cookie; cookieSent says
// whether the request carried a session cookie at all (then it wins: an
// unknown one is no session, whatever the connection). The Cookie header
// is parsed by hand: GenieACS accepts "," as a separator as well as ";"
// and some CPEs rely on it, which net/http's parser does not.
func (s *Server) lookup(r *http.Request) (sess *session, cookieSent bool) {
	for _, line := range r.Header["Cookie"] {
		for line != "" {
			var part string
			i := strings.IndexAny(line, ";,")
			if i < 0 {
				part, line = line, ""
			} else {
				part, line = line[:i], line[i+1:]
			}
			part = strings.TrimSpace(part)
			if v, ok := strings.CutPrefix(part, cookieName+"="); ok {
				cookieSent = true
				if sess, ok := s.sessions.load(strings.Trim(v, `"`)); ok {
					return sess, true
				}
			}
		}
	}
	return nil, cookieSent
}

func envBody(env *cwmp.Envelope) cwmp.Message {
	if env == nil {
		return nil
	}
	return env.Body
}

// badMessage counts, logs (once per device per badMessageLogEvery) and
// keeps a message the edge could not fully read. env is what was decoded
// of it (nil when nothing was), body the raw message (nil when it was not
// read). The device is the session's, the Inform's, the one whose own
// credentials authenticated the request, or the one the raw body names.
func (s *Server) badMessage(r *http.Request, sess *session, who identity, env *cwmp.Envelope, body []byte, outcome, reason, msg string, now time.Time) {
	if outcome == BadRejected {
		s.metrics.RejectedMessages.WithLabelValues(reason).Inc()
	} else if env != nil {
		for _, sk := range env.Skipped {
			s.metrics.SkippedEntries.WithLabelValues(sk.Reason).Inc()
		}
		if more := env.SkippedTotal - len(env.Skipped); more > 0 {
			s.metrics.SkippedEntries.WithLabelValues("not_detailed").Add(float64(more))
		}
	}
	device := ""
	if sess != nil {
		device = sess.deviceID
	} else if inf, ok := envBody(env).(*cwmp.Inform); ok {
		device, _ = fleet.DeviceID(inf.DeviceId.OUI, inf.DeviceId.ProductClass, inf.DeviceId.SerialNumber)
	}
	if device == "" && len(who.devices) == 1 {
		device = who.devices[0]
	}
	if device == "" && body != nil {
		device = sniffDeviceID(body)
	}
	key := device
	if key == "" {
		key = "ip:" + remoteIP(r.RemoteAddr)
	}
	s.bad.record(key, &BadMessage{Device: device, Time: now.UTC(), Outcome: outcome, Reason: reason, Error: msg,
		ContentType: r.Header.Get("Content-Type"), RemoteAddr: r.RemoteAddr}, body, now)
}

// bodyPrealloc bounds the buffer readBody sets aside for a body from its
// Content-Length before a byte of it has come: a CPE's answers are tens of
// KB, and clients declaring the 4 MiB limit without sending it must not
// hold that much each.
const bodyPrealloc = 256 << 10

// readBody reads the request body into buf, decompressing gzip or deflate,
// within MaxBodyBytes. It returns the HTTP status to answer on error.
func (s *Server) readBody(r *http.Request, buf *bytes.Buffer) (int, error) {
	limit := s.cfg.MaxBodyBytes
	if r.ContentLength > limit {
		return http.StatusRequestEntityTooLarge, fmt.Errorf("body of %d bytes exceeds the %d byte limit", r.ContentLength, limit)
	}
	var src io.Reader = io.LimitReader(r.Body, limit+1)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(src)
		if err != nil {
			return http.StatusBadRequest, fmt.Errorf("bad gzip body: %w", err)
		}
		defer zr.Close()
		src = zr
	case "deflate":
		// RFC 9110's "deflate" is the zlib format (RFC 1950); some
		// clients send raw deflate (RFC 1951) instead. The zlib header's
		// check bits tell them apart.
		br := bufio.NewReader(src)
		if hdr, err := br.Peek(2); err == nil && isZlibHeader(hdr) {
			zr, err := zlib.NewReader(br)
			if err != nil {
				return http.StatusBadRequest, fmt.Errorf("bad deflate (zlib) body: %w", err)
			}
			defer zr.Close()
			src = zr
		} else {
			zr := flate.NewReader(br)
			defer zr.Close()
			src = zr
		}
	default:
		return http.StatusUnsupportedMediaType, fmt.Errorf("unsupported Content-Encoding %q", enc)
	}
	if r.ContentLength > 0 {
		// Room for the declared body: ReadFrom otherwise reads a
		// bootstrap's 40 KB GetParameterNames answer in as many syscalls
		// as the buffer takes doublings to fit it. Up to bodyPrealloc
		// only: a declared length is a claim, and memory for the rest is
		// taken as the bytes arrive.
		buf.Grow(int(min(r.ContentLength, bodyPrealloc)) + bytes.MinRead)
	}
	// The decompressed size is bounded too: a small gzip bomb must not
	// fill memory.
	if _, err := buf.ReadFrom(io.LimitReader(src, limit+1)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return http.StatusRequestEntityTooLarge, fmt.Errorf("body exceeds the %d byte limit", limit)
		}
		return http.StatusBadRequest, fmt.Errorf("read body: %w", err)
	}
	if int64(buf.Len()) > limit {
		return http.StatusRequestEntityTooLarge, fmt.Errorf("body exceeds the %d byte limit", limit)
	}
	return 0, nil
}

// drainRefused waits a little for the unread body of a request refused
// before its body was read (a 401 challenge, usually the first leg of
// digest). Go's HTTP/1 server reads a small unread body (up to 256 KiB)
// before it writes the response, so that the connection can carry the
// next request; a client that stalled its body would hold back its own
// answer until the listener's 60 s read timeout. Draining here under a
// short deadline keeps the connection of a CPE that sent its whole body
// (the retry with credentials comes on it), and answers a stalled one
// within refusalDrain, closing its connection. Nothing is buffered.
func drainRefused(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength == 0 || r.ContentLength > maxRefusedDrain {
		return // nothing to wait for, or so much that the server closes anyway
	}
	if err := http.NewResponseController(w).SetReadDeadline(time.Now().Add(refusalDrain)); err != nil {
		return
	}
	_, _ = io.CopyN(io.Discard, r.Body, maxRefusedDrain)
}

// Bounds of drainRefused: net/http's own limit for discarding an unread
// body, and how long a refused client may take to finish sending it.
const (
	maxRefusedDrain = 256 << 10
	refusalDrain    = time.Second
)

// isZlibHeader reports whether b starts a zlib stream: compression method
// 8 (deflate), a window of at most 32 KiB, and the header check (RFC 1950
// §2.2). A raw deflate stream rarely matches by chance (it would need a
// stored block with a check that happens to hold, about 1 in 1,000 at
// worst), and one that does is refused as a bad zlib body.
func isZlibHeader(b []byte) bool {
	return b[0]&0x0f == 8 && b[0]>>4 <= 7 && (uint16(b[0])<<8|uint16(b[1]))%31 == 0
}

// maxPooledBuf is the largest buffer a pool keeps: an outsized one (a
// rare big body or reply) goes rather than stay pinned.
const maxPooledBuf = 1 << 20

func (s *Server) putBuf(b *bytes.Buffer) {
	if b.Cap() > maxPooledBuf {
		return // let an outsized buffer go rather than pin it
	}
	b.Reset()
	s.bufs.Put(b)
}

// replyBufs are the buffers replies are encoded into, kept between
// requests: a bootstrap's five replies are 0.5-16 KB each (the
// GetParameterValues of 256 names the largest), and a fresh buffer per
// reply was a twentieth of the edge's allocation in a storm.
// ResponseWriter.Write keeps nothing of what it is given.
var replyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

func (s *Server) writeEnvelope(w http.ResponseWriter, env *cwmp.Envelope) {
	bp := replyBufs.Get().(*[]byte)
	b, err := cwmp.AppendEncode((*bp)[:0], env)
	defer func() {
		if b != nil && cap(b) <= maxPooledBuf {
			*bp = b[:0]
		}
		replyBufs.Put(bp)
	}()
	if err != nil {
		s.log.Error("encode reply", "err", err)
		s.httpError(w, http.StatusInternalServerError, "cannot encode reply")
		return
	}
	h := w.Header()
	h["Content-Type"] = hdrXML
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// filesBaseURL is where the CPE will download files from: the configured
// URL, or this listener as the CPE reached it.
func (s *Server) filesBaseURL(r *http.Request) string {
	if s.cfg.FilesBaseURL != "" {
		return s.cfg.FilesBaseURL
	}
	scheme := "http://"
	if r.TLS != nil {
		scheme = "https://"
	}
	return scheme + r.Host + "/files/"
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

func remoteIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24
	return hex.EncodeToString(b[:])
}

// shardedMap is a string-keyed map split into locked shards so that
// thousands of sessions starting and ending per second do not contend on
// one lock (sync.Map is tuned for read-mostly keys, not this churn).
type shardedMap[V comparable] struct {
	seed   maphash.Seed
	shards [64]struct {
		mu sync.Mutex
		m  map[string]V
		_  [40]byte // keep shards on separate cache lines
	}
}

func (m *shardedMap[V]) init() {
	m.seed = maphash.MakeSeed()
	for i := range m.shards {
		m.shards[i].m = make(map[string]V)
	}
}

func (m *shardedMap[V]) shard(k string) int {
	return int(maphash.String(m.seed, k) % uint64(len(m.shards)))
}

func (m *shardedMap[V]) load(k string) (V, bool) {
	sh := &m.shards[m.shard(k)]
	sh.mu.Lock()
	v, ok := sh.m[k]
	sh.mu.Unlock()
	return v, ok
}

func (m *shardedMap[V]) store(k string, v V) {
	sh := &m.shards[m.shard(k)]
	sh.mu.Lock()
	sh.m[k] = v
	sh.mu.Unlock()
}

// swap stores v and returns the previous value.
func (m *shardedMap[V]) swap(k string, v V) (V, bool) {
	sh := &m.shards[m.shard(k)]
	sh.mu.Lock()
	old, ok := sh.m[k]
	sh.m[k] = v
	sh.mu.Unlock()
	return old, ok
}

// delete removes k only while it still maps to v.
func (m *shardedMap[V]) delete(k string, v V) {
	sh := &m.shards[m.shard(k)]
	sh.mu.Lock()
	if cur, ok := sh.m[k]; ok && cur == v {
		delete(sh.m, k)
	}
	sh.mu.Unlock()
}

// each calls fn for a snapshot of the values, without holding any lock
// while fn runs.
func (m *shardedMap[V]) each(fn func(V)) {
	var vs []V
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		vs = vs[:0]
		for _, v := range sh.m {
			vs = append(vs, v)
		}
		sh.mu.Unlock()
		for _, v := range vs {
			fn(v)
		}
	}
}
