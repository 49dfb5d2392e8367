package cwmp

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"
	"sync"
)

// ErrBadDigest means a Digest WWW-Authenticate or Authorization header could
// not be parsed or lacks a required parameter.
var ErrBadDigest = errors.New("cwmp: malformed digest header")

// Digest algorithm names (RFC 7616 §6.1). The "-sess" variants are accepted too.
const (
	DigestMD5       = "MD5"
	DigestSHA256    = "SHA-256"
	DigestSHA512256 = "SHA-512-256"
)

// DigestChallenge is a Digest WWW-Authenticate challenge (RFC 7616 §3.3).
type DigestChallenge struct {
	Realm string
	Nonce string
	// Opaque is echoed back unchanged by the client.
	Opaque string
	// Algorithm is "MD5" (also when empty), "SHA-256", "SHA-512-256" or a
	// "-sess" variant.
	Algorithm string
	// QOP is the comma-separated qop-options, such as "auth" or
	// "auth,auth-int"; empty selects the RFC 2069 legacy computation.
	QOP string
	// Stale says the nonce expired but the credentials were right, so the
	// client retries with the new nonce without asking the user.
	Stale bool
}

// String renders the challenge as a WWW-Authenticate header value.
func (c DigestChallenge) String() string {
	var b strings.Builder
	b.WriteString("Digest ")
	writeParam(&b, "realm", c.Realm, true)
	if c.QOP != "" {
		writeParam(&b, "qop", c.QOP, true)
	}
	writeParam(&b, "nonce", c.Nonce, true)
	if c.Opaque != "" {
		writeParam(&b, "opaque", c.Opaque, true)
	}
	if c.Algorithm != "" {
		writeParam(&b, "algorithm", c.Algorithm, false)
	}
	if c.Stale {
		writeParam(&b, "stale", "true", false)
	}
	return b.String()
}

// ParseDigestChallenge parses a WWW-Authenticate header value holding a
// Digest challenge. The scheme is matched case-insensitively; parameters
// may be quoted (with backslash escapes and commas inside) or bare tokens.
// Parsing stops at a following challenge of another scheme ("…, Basic
// realm=…"). realm and nonce are required.
func ParseDigestChallenge(h string) (DigestChallenge, error) {
	params, err := parseDigestParams(h)
	if err != nil {
		return DigestChallenge{}, err
	}
	c := DigestChallenge{
		Realm:     params["realm"],
		Nonce:     params["nonce"],
		Opaque:    params["opaque"],
		Algorithm: params["algorithm"],
		QOP:       params["qop"],
		Stale:     strings.EqualFold(params["stale"], "true"),
	}
	if _, ok := params["realm"]; !ok {
		return DigestChallenge{}, fmt.Errorf("%w: challenge without realm", ErrBadDigest)
	}
	if c.Nonce == "" {
		return DigestChallenge{}, fmt.Errorf("%w: challenge without nonce", ErrBadDigest)
	}
	return c, nil
}

// DigestAuthorization is a Digest Authorization header (RFC 7616 §3.4).
type DigestAuthorization struct {
	Username  string
	Realm     string
	Nonce     string
	URI       string
	Response  string
	Algorithm string
	CNonce    string
	// NC is the nonce count: 8 hex digits such as "00000001".
	NC     string
	QOP    string
	Opaque string
}

// String renders the authorization as an Authorization header value.
func (a DigestAuthorization) String() string {
	var b strings.Builder
	b.WriteString("Digest ")
	writeParam(&b, "username", a.Username, true)
	writeParam(&b, "realm", a.Realm, true)
	writeParam(&b, "nonce", a.Nonce, true)
	writeParam(&b, "uri", a.URI, true)
	if a.Algorithm != "" {
		writeParam(&b, "algorithm", a.Algorithm, false)
	}
	writeParam(&b, "response", a.Response, true)
	if a.Opaque != "" {
		writeParam(&b, "opaque", a.Opaque, true)
	}
	// qop and nc are unquoted per RFC 7616; some servers reject quotes.
	if a.QOP != "" {
		writeParam(&b, "qop", a.QOP, false)
	}
	if a.NC != "" {
		writeParam(&b, "nc", a.NC, false)
	}
	if a.CNonce != "" {
		// A -sess algorithm needs the cnonce even in the legacy form.
		writeParam(&b, "cnonce", a.CNonce, true)
	}
	return b.String()
}

// ParseDigestAuthorization parses an Authorization header value holding
// Digest credentials. username, realm, nonce, uri and response are
// required, and with a qop also cnonce and nc.
func ParseDigestAuthorization(h string) (DigestAuthorization, error) {
	params, err := parseDigestParams(h)
	if err != nil {
		return DigestAuthorization{}, err
	}
	a := DigestAuthorization{
		Username:  params["username"],
		Realm:     params["realm"],
		Nonce:     params["nonce"],
		URI:       params["uri"],
		Response:  params["response"],
		Algorithm: params["algorithm"],
		CNonce:    params["cnonce"],
		NC:        params["nc"],
		QOP:       params["qop"],
		Opaque:    params["opaque"],
	}
	for _, k := range []string{"username", "realm", "nonce", "uri", "response"} {
		if _, ok := params[k]; !ok {
			return DigestAuthorization{}, fmt.Errorf("%w: authorization without %s", ErrBadDigest, k)
		}
	}
	if a.QOP != "" && (a.CNonce == "" || a.NC == "") {
		return DigestAuthorization{}, fmt.Errorf("%w: qop without cnonce or nc", ErrBadDigest)
	}
	return a, nil
}

// NonceCount parses NC, the client's count of the requests it made with
// this nonce (RFC 7616 §3.4: 8 hex digits; 1 to 8 are accepted, either
// case). ok is false when NC is absent or not hex. A server that refuses
// any count not above the last one it accepted for the nonce detects a
// replayed header.
func (a DigestAuthorization) NonceCount() (n uint32, ok bool) {
	if a.NC == "" || len(a.NC) > 8 {
		return 0, false
	}
	for i := 0; i < len(a.NC); i++ {
		c := a.NC[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | uint32(d)
	}
	return n, true
}

// Verify reports whether the credentials carry the right response for
// method and password. It checks only the hash: the server must itself
// check that Nonce is one it issued (and not stale), that Realm is its own,
// that URI matches the request, and that NC increases if it tracks replay.
// qop "auth-int" is not supported and never verifies.
func (a DigestAuthorization) Verify(method, password string) bool {
	if a.QOP != "" && !strings.EqualFold(a.QOP, "auth") {
		return false
	}
	want, ok := digestResponse(a.Algorithm, a.Username, a.Realm, password, method, a.URI, a.Nonce, a.NC, a.CNonce, a.QOP)
	if !ok {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(a.Response))) == 1
}

// ComputeDigestAuthorization answers a challenge (client side). It uses qop
// "auth" when the challenge offers qop options (servers offering only
// auth-int get "auth" anyway and will refuse it) and the RFC 2069 form
// otherwise. An empty cnonce is replaced by a random one; nc counts the
// requests made with this nonce, starting at 1. An unsupported algorithm
// yields an empty Response.
func ComputeDigestAuthorization(ch DigestChallenge, method, uri, username, password, cnonce string, nc uint32) DigestAuthorization {
	a := DigestAuthorization{
		Username:  username,
		Realm:     ch.Realm,
		Nonce:     ch.Nonce,
		URI:       uri,
		Algorithm: ch.Algorithm,
		Opaque:    ch.Opaque,
	}
	if ch.QOP != "" || isSess(ch.Algorithm) {
		if cnonce == "" {
			cnonce = randomHex(8)
		}
		a.CNonce = cnonce
	}
	if ch.QOP != "" {
		a.QOP = "auth"
		a.NC = fmt.Sprintf("%08x", nc)
	}
	a.Response, _ = digestResponse(a.Algorithm, username, a.Realm, password, method, uri, a.Nonce, a.NC, a.CNonce, a.QOP)
	return a
}

// NewNonce returns a fresh random nonce: 32 lowercase hex digits.
func NewNonce() string { return randomHex(16) }

func randomHex(n int) string {
	b := make([]byte, n)
	// crypto/rand.Read never fails on supported platforms (Go 1.24+ panics
	// internally instead of returning an error).
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func isSess(alg string) bool {
	return len(alg) > 5 && strings.EqualFold(alg[len(alg)-5:], "-sess")
}

func digestHash(alg string) func() hash.Hash {
	base := alg
	if isSess(alg) {
		base = alg[:len(alg)-5]
	}
	switch strings.ToUpper(base) {
	case "", DigestMD5:
		return md5.New
	case DigestSHA256:
		return sha256.New
	case DigestSHA512256:
		return sha512.New512_256
	}
	return nil
}

// digestResponse computes the request-digest of RFC 7616 §3.4.1 (and the
// RFC 2069 form when qop is empty), as lowercase hex.
func digestResponse(alg, username, realm, password, method, uri, nonce, nc, cnonce, qop string) (string, bool) {
	newHash := digestHash(alg)
	if newHash == nil {
		return "", false
	}
	h := func(parts ...string) string {
		d := newHash()
		for i, p := range parts {
			if i > 0 {
				d.Write([]byte{':'})
			}
			io.WriteString(d, p)
		}
		return hex.EncodeToString(d.Sum(nil))
	}
	ha1 := h(username, realm, password)
	if isSess(alg) {
		ha1 = h(ha1, nonce, cnonce)
	}
	ha2 := h(method, uri)
	if qop == "" {
		return h(ha1, nonce, ha2), true
	}
	return h(ha1, nonce, nc, cnonce, qop, ha2), true
}

func writeParam(b *strings.Builder, key, value string, quote bool) {
	if !strings.HasSuffix(b.String(), " ") {
		b.WriteString(", ")
	}
	b.WriteString(key)
	b.WriteByte('=')
	if !quote && isToken(value) {
		b.WriteString(value)
		return
	}
	b.WriteByte('"')
	for i := 0; i < len(value); i++ {
		if c := value[i]; c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(value[i])
	}
	b.WriteByte('"')
}

// maxDigestHeader bounds the header text parsed, since it is untrusted.
const maxDigestHeader = 8 << 10

// parseDigestParams parses `Digest k=v, k="v", ...` into lower-cased keys.
// The first occurrence of a key wins.
func parseDigestParams(h string) (map[string]string, error) {
	if len(h) > maxDigestHeader {
		return nil, fmt.Errorf("%w: header of %d bytes", ErrBadDigest, len(h))
	}
	s := strings.TrimLeft(h, " \t")
	if len(s) < 6 || !strings.EqualFold(s[:6], "digest") || (len(s) > 6 && s[6] != ' ' && s[6] != '\t') {
		return nil, fmt.Errorf("%w: not a Digest header", ErrBadDigest)
	}
	s = s[6:]
	params := make(map[string]string)
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			break
		}
		i := 0
		for i < len(s) && isTokenChar(s[i]) {
			i++
		}
		if i == 0 {
			return nil, fmt.Errorf("%w: unexpected %q", ErrBadDigest, s[0])
		}
		key := strings.ToLower(s[:i])
		rest := strings.TrimLeft(s[i:], " \t")
		if rest == "" || rest[0] != '=' {
			// A bare token starts the next challenge (another scheme).
			break
		}
		rest = strings.TrimLeft(rest[1:], " \t")
		var value string
		if rest != "" && rest[0] == '"' {
			var b strings.Builder
			j := 1
			closed := false
			for ; j < len(rest); j++ {
				c := rest[j]
				if c == '\\' && j+1 < len(rest) {
					j++
					b.WriteByte(rest[j])
					continue
				}
				if c == '"' {
					closed = true
					break
				}
				b.WriteByte(c)
			}
			if !closed {
				return nil, fmt.Errorf("%w: unterminated quoted value of %s", ErrBadDigest, key)
			}
			value, s = b.String(), rest[j+1:]
		} else {
			j := 0
			for j < len(rest) && rest[j] != ',' && rest[j] != ' ' && rest[j] != '\t' {
				j++
			}
			value, s = rest[:j], rest[j:]
		}
		if _, dup := params[key]; !dup {
			params[key] = value
		}
		s = strings.TrimLeft(s, " \t")
		if s != "" && s[0] != ',' {
			return nil, fmt.Errorf("%w: missing comma after %s", ErrBadDigest, key)
		}
	}
	return params, nil
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return s != ""
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// DigestTransport is an http.RoundTripper that answers HTTP Digest (and,
// with AllowBasic, Basic) challenges. A request that gets a 401 with a
// challenge is retried once with credentials (and once more if the server
// says the nonce was stale); its body is rewound with Request.GetBody, so
// a request with a body but no GetBody is not retried. The last accepted
// challenge is kept so later requests authenticate pre-emptively with an
// increasing nonce count, saving a round trip. A final 401 is returned to
// the caller as is.
//
// Safe for concurrent use; must not be copied after first use.
type DigestTransport struct {
	Username string
	Password string
	// Base carries the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
	// AllowBasic permits answering a Basic challenge, which sends the
	// password in the clear unless the connection is TLS.
	AllowBasic bool

	mu    sync.Mutex
	cache *DigestChallenge // last accepted digest challenge
	basic bool             // last accepted challenge was Basic
	nc    uint32
}

var _ http.RoundTripper = (*DigestTransport)(nil)

// RoundTrip implements http.RoundTripper.
func (t *DigestTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	hasBody := req.Body != nil && req.Body != http.NoBody

	first, preemptive := t.authorized(req)
	resp, err := base.RoundTrip(first)
	if err != nil {
		return nil, err
	}
	for attempt := 0; attempt < 2 && resp.StatusCode == http.StatusUnauthorized; attempt++ {
		ch, basic, ok := pickChallenge(resp.Header.Values("WWW-Authenticate"), t.AllowBasic)
		if !ok {
			if preemptive {
				t.forget()
			}
			return resp, nil
		}
		// After a failed non-pre-emptive attempt with credentials, only a
		// stale nonce deserves another try: the password was wrong.
		if attempt > 0 && (basic || !ch.Stale) {
			t.forget()
			return resp, nil
		}
		if hasBody && req.GetBody == nil {
			return resp, nil
		}
		retry := req.Clone(req.Context())
		if hasBody {
			body, err := req.GetBody()
			if err != nil {
				return resp, nil
			}
			retry.Body = body
		}
		discard(resp)
		t.learn(ch, basic)
		retry, _ = t.authorized(retry)
		resp, err = base.RoundTrip(retry)
		if err != nil {
			return nil, err
		}
	}
	if resp.StatusCode == http.StatusUnauthorized {
		t.forget()
	}
	return resp, nil
}

// authorized returns a copy of req with the Authorization header from
// the cached challenge, and true; or req itself, and false, when there is
// none to send. A RoundTripper must not modify its request, but a client
// never challenged (an ACS without CPE authentication) then pays no copy
// of the request and its header per exchange.
func (t *DigestTransport) authorized(req *http.Request) (*http.Request, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.basic:
		req = req.Clone(req.Context())
		req.SetBasicAuth(t.Username, t.Password)
		return req, true
	case t.cache != nil:
		t.nc++
		a := ComputeDigestAuthorization(*t.cache, req.Method, req.URL.RequestURI(), t.Username, t.Password, "", t.nc)
		req = req.Clone(req.Context())
		req.Header.Set("Authorization", a.String())
		return req, true
	}
	return req, false
}

func (t *DigestTransport) learn(ch DigestChallenge, basic bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.basic = basic
	if basic {
		t.cache = nil
	} else {
		t.cache = &ch
	}
	t.nc = 0
}

func (t *DigestTransport) forget() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cache, t.basic, t.nc = nil, false, 0
}

// pickChallenge chooses among WWW-Authenticate values: the strongest
// supported Digest challenge, else Basic when allowed.
func pickChallenge(values []string, allowBasic bool) (DigestChallenge, bool, bool) {
	var best DigestChallenge
	bestRank, haveBasic := 0, false
	for _, v := range values {
		for _, part := range splitChallenges(v) {
			if isScheme(part, "basic") {
				haveBasic = true
				continue
			}
			ch, err := ParseDigestChallenge(part)
			if err != nil {
				continue
			}
			rank := 0
			switch strings.TrimSuffix(strings.ToUpper(ch.Algorithm), "-SESS") {
			case "", DigestMD5:
				rank = 1
			case DigestSHA256, DigestSHA512256:
				rank = 2
			}
			if rank > bestRank {
				best, bestRank = ch, rank
			}
		}
	}
	if bestRank > 0 {
		return best, false, true
	}
	if haveBasic && allowBasic {
		return DigestChallenge{}, true, true
	}
	return DigestChallenge{}, false, false
}

// splitChallenges splits one header value that may hold several
// challenges ("Digest …, Basic realm=…") at each new scheme name.
func splitChallenges(v string) []string {
	var out []string
	start := 0
	inQuote := false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && inQuote:
			i++
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			// A new challenge starts when the next item is "token token".
			rest := strings.TrimLeft(v[i+1:], " \t")
			j := 0
			for j < len(rest) && isTokenChar(rest[j]) {
				j++
			}
			if j > 0 && (j == len(rest) || rest[j] == ' ' || rest[j] == '\t') {
				after := strings.TrimLeft(rest[j:], " \t")
				if after == "" || after[0] != '=' {
					out = append(out, v[start:i])
					start = i + 1
				}
			}
		}
	}
	return append(out, v[start:])
}

func isScheme(challenge, scheme string) bool {
	s := strings.TrimLeft(challenge, " \t")
	return len(s) >= len(scheme) && strings.EqualFold(s[:len(scheme)], scheme) &&
		(len(s) == len(scheme) || s[len(scheme)] == ' ' || s[len(scheme)] == '\t')
}

// discard drains a little of a response body so its connection can be
// reused, then closes it.
func discard(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
}
