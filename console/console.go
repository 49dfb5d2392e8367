package console

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/edgeacs/edgeacs/apiauth"
	"github.com/edgeacs/edgeacs/client"
	"github.com/edgeacs/edgeacs/fleet"
)

// Prefix is where the console is mounted: every page and asset is under it.
const Prefix = "/console/"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config wires a Console to the node that serves it.
type Config struct {
	// API is the node's whole /api/v1 handler, authentication included:
	// every page is built from its answers.
	API http.Handler
	// Tokens is the API's token store, read only to learn the name and
	// scope of the token a session holds (which buttons to show, whether
	// the session is still valid); the API checks the token again on
	// every call.
	Tokens apiauth.Store
	// Title names the node in the page header ("core core1").
	Title string
	// Logger receives sign-ins and sign-outs; nil discards.
	Logger *slog.Logger
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
	// SessionIdle ends a session unused this long (default 8 h);
	// SessionMax ends any session this old (default 24 h).
	SessionIdle, SessionMax time.Duration
	// MaxSessions bounds the sessions kept (default 10000); the least
	// recently used goes first.
	MaxSessions int
	// Features says which parts of the core's API the node's API has, so
	// that the console shows only what it can serve; nil is the core's
	// (all of them). A standalone edge passes &Features{}.
	Features *Features
}

// Features are the parts of the core's API a node's API may lack (a
// standalone edge's has none of them); each one the console's pages use
// is shown only when it is there.
type Features struct {
	// Tags: POST/DELETE /api/v1/devices/{id}/tags/{tag} (a device's tags,
	// the device list's Tags column).
	Tags bool
	// Edges: GET /api/v1/edges (the overview's edges table).
	Edges bool
	// Rollouts: GET /api/v1/rollouts (the overview's rollouts).
	Rollouts bool
	// Filter: ?filter= expressions on GET /api/v1/devices. Without it the
	// filter box selects devices by ID prefix (?id=).
	Filter bool
	// TaskQuery: ?device= and ?status= on GET /api/v1/tasks. Without it a
	// device's tasks come from GET /api/v1/devices/{id}/tasks and the
	// tasks in flight from a scan of GET /api/v1/tasks.
	TaskQuery bool
}

// allFeatures is the core's API.
var allFeatures = Features{Tags: true, Edges: true, Rollouts: true, Filter: true, TaskQuery: true}

// Console is the web console: an http.Handler for everything under Prefix.
type Console struct {
	cfg   Config
	has   Features
	log   *slog.Logger
	now   func() time.Time
	sess  *sessions
	pages map[string]*template.Template
	mux   *http.ServeMux
	index *sortCache
}

// New returns a console over cfg.API. It starts no goroutine: sessions
// and caches expire as they are used.
func New(cfg Config) (*Console, error) {
	if cfg.API == nil || cfg.Tokens == nil {
		return nil, errors.New("console: Config.API and Config.Tokens are required")
	}
	c := &Console{cfg: cfg, log: cfg.Logger, now: cfg.Now, has: allFeatures}
	if cfg.Features != nil {
		c.has = *cfg.Features
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = 8 * time.Hour
	}
	if cfg.SessionMax <= 0 {
		cfg.SessionMax = 24 * time.Hour
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 10000
	}
	c.sess = newSessions(cfg.SessionIdle, cfg.SessionMax, cfg.MaxSessions, c.now)
	c.index = newSortCache(c.now)
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	c.pages = pages
	c.mux = c.routes()
	return c, nil
}

// parsePages parses each page with the layout and the shared fragments.
func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("console templates: %w", err)
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" || base == "fragments" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/fragments.html", n)
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", n, err)
		}
		out[base] = t
	}
	return out, nil
}

// ServeHTTP serves the console. Every answer forbids framing and caching
// and allows scripts and styles from the console itself only.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	if !strings.HasPrefix(r.URL.Path, Prefix+"static/") {
		h.Set("Cache-Control", "no-store")
	}
	c.mux.ServeHTTP(w, r)
}

// routes maps the console's paths. Pages that show data need a session;
// every POST also needs the session's CSRF token, and those that change
// anything a write scope.
func (c *Console) routes() *http.ServeMux {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET "+Prefix+"static/", http.StripPrefix(Prefix+"static/", http.FileServerFS(static)))
	mux.HandleFunc("GET "+Prefix+"signin", c.signInPage)
	mux.HandleFunc("POST "+Prefix+"signin", c.signIn)
	mux.HandleFunc("POST "+Prefix+"signout", c.post(false, c.signOut))

	mux.HandleFunc("GET "+Prefix+"{$}", c.page(c.overview))
	mux.HandleFunc("GET "+Prefix+"devices", c.page(c.devices))
	mux.HandleFunc("GET "+Prefix+"devices/{id}", c.page(c.device))
	mux.HandleFunc("GET "+Prefix+"devices/{id}/tree", c.page(c.deviceTree))
	if c.has.Tags {
		mux.HandleFunc("POST "+Prefix+"devices/{id}/tags", c.post(true, c.addTag))
		mux.HandleFunc("POST "+Prefix+"devices/{id}/tags/{tag}/delete", c.post(true, c.removeTag))
	}
	mux.HandleFunc("POST "+Prefix+"devices/{id}/tasks", c.post(true, c.deviceAction))
	mux.HandleFunc("GET "+Prefix+"tasks/{id}", c.page(c.task))
	mux.HandleFunc("GET "+Prefix+"presets", c.page(c.presets))
	mux.HandleFunc("GET "+Prefix+"presets/{name}", c.page(c.presetEdit))
	mux.HandleFunc("POST "+Prefix+"presets/{name}", c.post(true, c.presetSave))
	mux.HandleFunc("POST "+Prefix+"presets/{name}/delete", c.post(true, c.presetDelete))
	mux.HandleFunc("GET "+Prefix+"provisions", c.page(c.provisions))
	mux.HandleFunc("GET "+Prefix+"provisions/{name}", c.page(c.provisionEdit))
	mux.HandleFunc("POST "+Prefix+"provisions/{name}", c.post(true, c.provisionSave))
	mux.HandleFunc("POST "+Prefix+"provisions/{name}/delete", c.post(true, c.provisionDelete))
	mux.HandleFunc("GET "+Prefix+"files", c.page(c.files))
	mux.HandleFunc("POST "+Prefix+"files", c.post(true, c.fileUpload))
	mux.HandleFunc("POST "+Prefix+"files/{name}/delete", c.post(true, c.fileDelete))
	mux.HandleFunc(Prefix, func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, nil, http.StatusNotFound, "There is no console page at "+r.URL.Path+".")
	})
	return mux
}

// req is one request to a page: the session's API client and what the
// templates need to know about the operator.
type req struct {
	*http.Request
	s   *session
	api *client.Client
	ctx context.Context
	// parts is a multipart body's reader, after its csrf field.
	parts *multipart.Reader
}

// canWrite reports whether the session's token may change things.
func (q *req) canWrite() bool { return q.s.scope.Allows(fleet.ScopeWrite) }

type handler func(w http.ResponseWriter, q *req) error

// page serves h to a signed-in operator; anyone else is sent to sign in
// (an htmx request is told to load the sign-in page).
func (c *Console) page(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := c.current(r)
		if s == nil {
			c.toSignIn(w, r)
			return
		}
		c.run(w, r, s, h)
	}
}

// post serves h to a signed-in operator whose request carries the
// session's CSRF token (form field "csrf" or header X-CSRF-Token) and,
// when write is set, whose token has the write scope.
func (c *Console) post(write bool, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := c.current(r)
		if s == nil {
			c.toSignIn(w, r)
			return
		}
		if !sameOrigin(r) {
			c.fail(w, r, s, http.StatusForbidden, "This form was posted from another site; it was refused.")
			return
		}
		tok, mr := csrfOf(r)
		if !s.checkCSRF(tok) {
			c.fail(w, r, s, http.StatusForbidden, "The form's security token is missing or stale; reload the page and try again.")
			return
		}
		if write && !s.scope.Allows(fleet.ScopeWrite) {
			c.fail(w, r, s, http.StatusForbidden, fmt.Sprintf("Your token %s has scope %s: it can look but not change anything.", s.name, s.scope))
			return
		}
		c.runWith(w, r, s, mr, h)
	}
}

// run calls h with the session's client; an API answer that the token is
// no longer valid ends the session.
func (c *Console) run(w http.ResponseWriter, r *http.Request, s *session, h handler) {
	c.runWith(w, r, s, nil, h)
}

func (c *Console) runWith(w http.ResponseWriter, r *http.Request, s *session, mr *multipart.Reader, h handler) {
	ctx := withRemote(r.Context(), r.RemoteAddr)
	q := &req{Request: r, s: s, api: s.api, ctx: ctx, parts: mr}
	err := h(w, q)
	if err == nil {
		return
	}
	if errors.Is(err, client.ErrUnauthorized) {
		c.sess.drop(s)
		c.toSignIn(w, r)
		return
	}
	status := http.StatusInternalServerError
	var ae *client.APIError
	switch {
	case errors.As(err, &ae):
		status = ae.Status
		err = errors.New(ae.Message)
	case errors.Is(err, client.ErrForbidden):
		status = http.StatusForbidden
	case errors.Is(err, client.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, client.ErrBadRequest):
		status = http.StatusBadRequest
	}
	c.fail(w, r, s, status, err.Error())
}

// csrfOf is the CSRF token a POST carries: htmx sends the header, a plain
// form the field. A multipart form (a file upload) is not parsed whole,
// which would spool the file before the token is checked: its first part
// must be the csrf field, and the reader, positioned after it, is
// returned for the handler to go on with.
func csrfOf(r *http.Request) (string, *multipart.Reader) {
	var mr *multipart.Reader
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/") {
		var err error
		if mr, err = r.MultipartReader(); err != nil {
			return "", nil
		}
		if v := r.Header.Get("X-CSRF-Token"); v != "" {
			return v, mr
		}
		p, err := mr.NextPart()
		if err != nil || p.FormName() != "csrf" {
			return "", nil
		}
		b, err := io.ReadAll(io.LimitReader(p, 256))
		if err != nil {
			return "", nil
		}
		return string(b), mr
	}
	if v := r.Header.Get("X-CSRF-Token"); v != "" {
		return v, nil
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxForm)
	return r.PostFormValue("csrf"), nil
}

// maxForm bounds a form's body (a preset or a provision script is the
// largest).
const maxForm = 2 * fleet.MaxProvisionScript

// sameOrigin refuses a POST whose Origin (sent by every current browser)
// names another host; SameSite=Strict cookies already keep other sites'
// posts unauthenticated, this is the second lock.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// toSignIn sends the browser to the sign-in page.
func (c *Console) toSignIn(w http.ResponseWriter, r *http.Request) {
	to := Prefix + "signin"
	if r.Method == http.MethodGet && r.URL.Path != Prefix+"signin" && r.Header.Get("HX-Request") == "" {
		to += "?next=" + url.QueryEscape(r.URL.RequestURI())
	}
	if r.Header.Get("HX-Request") != "" {
		w.Header().Set("HX-Redirect", to)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// view is what every page template gets.
type view struct {
	Title    string
	Node     string
	Nav      string
	Operator string
	Scope    string
	CanWrite bool
	CSRF     string
	Error    string
	Flash    string
	// Has is what the node's API has (Config.Features).
	Has  Features
	Data any
}

// render writes page name (the full layout, or only its "content"
// template for an htmx request that asks for a fragment).
func (c *Console) render(w http.ResponseWriter, q *req, status int, name, title, nav string, data any) error {
	v := view{Title: title, Node: c.cfg.Title, Nav: nav, Has: c.has, Data: data}
	if q != nil {
		v.Operator, v.Scope, v.CanWrite, v.CSRF = q.s.name, string(q.s.scope), q.canWrite(), q.s.csrf
		v.Flash = q.URL.Query().Get("flash")
	}
	return c.write(w, status, name, "layout", v)
}

// fragment writes one named template of page name, without the layout,
// with data as its dot.
func (c *Console) fragment(w http.ResponseWriter, name, tmpl string, data any) error {
	t := c.pages[name]
	if t == nil {
		return fmt.Errorf("console: no page %q", name)
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, tmpl, data); err != nil {
		return fmt.Errorf("console: render %s: %w", name, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, err := io.Copy(w, &b)
	return err
}

func (c *Console) write(w http.ResponseWriter, status int, name, tmpl string, v view) error {
	t := c.pages[name]
	if t == nil {
		return fmt.Errorf("console: no page %q", name)
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, tmpl, v); err != nil {
		return fmt.Errorf("console: render %s: %w", name, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, err := io.Copy(w, &b)
	return err
}

// fail answers an error page (or, for htmx, an error fragment).
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	if r.Header.Get("HX-Request") != "" {
		// htmx swaps only 2xx answers by default: say it in the target
		// region instead of leaving the page unchanged.
		w.Header().Set("HX-Retarget", "#console-error")
		w.Header().Set("HX-Reswap", "innerHTML")
		if err := c.fragment(w, "error", "message", msg); err != nil {
			c.log.Error("console: render error", "err", err)
		}
		return
	}
	v := view{Title: http.StatusText(status), Node: c.cfg.Title, Has: c.has, Error: msg}
	if s != nil {
		v.Operator, v.Scope, v.CanWrite, v.CSRF = s.name, string(s.scope), s.scope.Allows(fleet.ScopeWrite), s.csrf
	}
	if err := c.write(w, status, "error", "layout", v); err != nil {
		c.log.Error("console: render error", "err", err)
	}
}

// redirect answers a plain form post with a 303 to path (and a flash
// message); an htmx post is told to load it.
func redirect(w http.ResponseWriter, r *http.Request, path, flash string) {
	if flash != "" {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "flash=" + url.QueryEscape(flash)
	}
	if r.Header.Get("HX-Request") != "" {
		w.Header().Set("HX-Redirect", path)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	http.Redirect(w, r, path, http.StatusSeeOther)
}
