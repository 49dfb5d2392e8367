package edge

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"net"
	"net/http"
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

	bufs sync.Pool // *bytes.Buffer for request bodies
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
	username string // credentials that opened the session, for re-authentication
	password string
	timeout  time.Duration
	started  time.Time
	last     atomic.Int64 // unix nanoseconds of the last request
	closed   bool         // finished; a request still holding the cookie gets 400
}

func (s *session) touch(now time.Time) { s.last.Store(now.UnixNano()) }

// newServer builds the CWMP handler. The configuration must be validated.
func newServer(cfg Config, cache *Cache, files *FileStore, m *Metrics, log *slog.Logger) *Server {
	s := &Server{
		cfg:     cfg,
		cache:   cache,
		files:   files,
		auth:    newAuthenticator(cfg, m, log),
		metrics: m,
		log:     log,
		sessCfg: cwmp.SessionConfig{HoldRequests: cfg.HoldRequests},
		decoder: cwmp.Decoder{MaxSize: int(cfg.MaxBodyBytes)},
	}
	s.sessions.init()
	s.byDevice.init()
	s.bufs.New = func() any { return bytes.NewBuffer(make([]byte, 0, 16<<10)) }
	return s
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
	if s.cfg.FilesAuth && s.auth.enabled() {
		ip := remoteIP(r.RemoteAddr)
		if s.auth.blocked(ip, time.Now()) {
			s.refuseBlocked(w)
			return
		}
		if !s.auth.check(w, r, s.cfg.Username, s.cfg.Password, ip) {
			return
		}
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
	http.ServeContent(w, r, name, meta.Uploaded, f)
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
	buf := s.bufs.Get().(*bytes.Buffer)
	defer s.putBuf(buf)
	if code, err := s.readBody(r, buf); err != nil {
		s.httpError(w, code, err.Error())
		return
	}

	// Parse before authenticating: the Inform names the device, and with it
	// the per-device credentials to check (GenieACS does the same).
	var env *cwmp.Envelope
	if body := buf.Bytes(); !isBlank(body) {
		var err error
		env, err = s.decoder.Decode(body)
		if err != nil {
			if errors.Is(err, cwmp.ErrUnknownMethod) && env != nil {
				s.writeEnvelope(w, &cwmp.Envelope{Namespace: env.Namespace, ID: env.ID, HasID: true,
					Body: cwmp.NewFault(cwmp.FaultACSMethodNotSupported, "")})
				return
			}
			s.httpError(w, http.StatusBadRequest, "malformed CWMP envelope: "+err.Error())
			return
		}
	}

	sess := s.lookup(r)
	if env != nil {
		if inf, ok := env.Body.(*cwmp.Inform); ok {
			s.startSession(w, r, env, inf, sess, ip, now)
			return
		}
	}
	if sess == nil {
		s.httpError(w, http.StatusBadRequest, "no session: a CWMP session starts with an Inform")
		return
	}

	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.closed {
		s.httpError(w, http.StatusBadRequest, "no session: the session has ended")
		return
	}
	if r.Header.Get("Authorization") != "" && s.auth.enabled() {
		if !s.auth.check(w, r, sess.username, sess.password, ip) {
			return
		}
	}
	sess.touch(now)
	step, err := sess.cs.Receive(env)
	if err != nil {
		s.httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if step.Request != nil {
		if err := sess.work.CPERequest(step.Request); err != nil {
			s.log.Error("record CPE request", "device", sess.deviceID, "method", step.Request.Method(), "err", err)
			s.finishLocked(sess, false, outcomeError, now)
			s.httpError(w, http.StatusInternalServerError, "cannot record request")
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
	out := sess.cs.Next(sess.work.Next())
	if out == nil {
		if err := s.finishLocked(sess, true, outcomeCompleted, now); err != nil {
			s.httpError(w, http.StatusInternalServerError, "cannot commit session")
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
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, env *cwmp.Envelope, inf *cwmp.Inform, prev *session, ip string, now time.Time) {
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

	user, pass := s.cfg.Username, s.cfg.Password
	if s.auth.enabled() {
		if d, err := s.cache.Device(deviceID); err == nil && d.Username != "" {
			user, pass = d.Username, d.Password
		} else if err != nil && !errors.Is(err, ErrNotFound) {
			s.log.Error("load device credentials", "device", deviceID, "err", err)
			s.httpError(w, http.StatusInternalServerError, "cannot load device")
			return
		}
		if !s.auth.check(w, r, user, pass, ip) {
			return
		}
	}

	// A device has at most one session: a new Inform means the old one was
	// abandoned by the CPE. End it first so its work cannot overwrite what
	// the new session records.
	old, replacing := s.byDevice.load(deviceID)
	if !replacing && (s.draining.Load() || (s.cfg.MaxConcurrentSessions > 0 && s.open.Load() >= int64(s.cfg.MaxConcurrentSessions))) {
		w.Header()["Retry-After"] = hdrRetryAfter
		s.httpError(w, http.StatusServiceUnavailable, "too many sessions, retry later")
		return
	}

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

	work, err := s.cache.BeginSession(inf, InformMeta{RemoteAddr: r.RemoteAddr, FilesBaseURL: s.filesBaseURL(r), Now: now})
	if err != nil {
		s.log.Error("record inform", "device", deviceID, "err", err)
		s.httpError(w, http.StatusInternalServerError, "cannot record inform")
		return
	}
	if !s.cfg.ManualCRCredentials {
		if err := provisionCRCredentials(s.cache, work.Device(), now); err != nil {
			s.log.Warn("cannot provision connection-request credentials", "device", deviceID, "err", err)
		}
	}
	timeout := s.cfg.SessionTimeout
	if env.SessionTimeout > 0 {
		timeout = time.Duration(env.SessionTimeout) * time.Second
	}
	sess := &session{
		cookie:   newSessionID(),
		deviceID: deviceID,
		cs:       cs,
		work:     work,
		username: user,
		password: pass,
		timeout:  timeout,
		started:  now,
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

	w.Header()["Set-Cookie"] = []string{cookieName + "=" + sess.cookie + "; Path=/; HttpOnly"}
	s.writeEnvelope(w, step.Reply)
}

// finishLocked ends a session (sess.mu held): it commits or abandons the
// work and forgets the session.
func (s *Server) finishLocked(sess *session, completed bool, outcome string, now time.Time) error {
	if sess.closed {
		return nil
	}
	sess.closed = true
	s.sessions.delete(sess.cookie, sess)
	s.byDevice.delete(sess.deviceID, sess)
	err := sess.work.End(completed)
	// Counted open until its work is committed: whoever waits for no open
	// sessions (shutdown, tests) then sees every result stored.
	s.metrics.OpenSessions.Set(float64(s.open.Add(-1)))
	if err != nil {
		s.log.Error("end session", "device", sess.deviceID, "completed", completed, "err", err)
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

// lookup finds the session named by the request's cookie. The Cookie
// header is parsed by hand: GenieACS accepts "," as a separator as well as
// ";" and some CPEs rely on it, which net/http's parser does not.
func (s *Server) lookup(r *http.Request) *session {
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
				if sess, ok := s.sessions.load(strings.Trim(v, `"`)); ok {
					return sess
				}
			}
		}
	}
	return nil
}

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
		zr := flate.NewReader(src)
		defer zr.Close()
		src = zr
	default:
		return http.StatusUnsupportedMediaType, fmt.Errorf("unsupported Content-Encoding %q", enc)
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

func (s *Server) putBuf(b *bytes.Buffer) {
	if b.Cap() > 1<<20 {
		return // let an outsized buffer go rather than pin it
	}
	b.Reset()
	s.bufs.Put(b)
}

func (s *Server) writeEnvelope(w http.ResponseWriter, env *cwmp.Envelope) {
	b, err := cwmp.Encode(env)
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
