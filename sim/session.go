package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
)

// ErrUnauthorized means the ACS refused the device's credentials.
var ErrUnauthorized = errors.New("sim: ACS refused the credentials")

// ErrBusy means the ACS answered 503 (overloaded or shutting down); the
// device retries after the Retry-After the ACS gave, as CPEs do.
var ErrBusy = errors.New("sim: ACS busy (503)")

// busyError is ErrBusy with the ACS's Retry-After (0: none given).
type busyError struct{ after time.Duration }

func (e *busyError) Error() string {
	return fmt.Sprintf("%v, retry after %s", ErrBusy, e.after)
}
func (e *busyError) Unwrap() error { return ErrBusy }

// retryAfter parses a Retry-After in seconds (the HTTP-date form is not
// what an ACS sends); 0 when absent or not understood.
func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// maxRequestsPerSession stops a runaway ACS from keeping a device busy forever.
const maxRequestsPerSession = 10000

// maxReplySize bounds what the device reads from one ACS reply.
const maxReplySize = 8 << 20

// sessionClient is one session's HTTP side: its own cookie jar and, unless
// the fleet pools connections, its own TCP connection, as a real CPE has.
type sessionClient struct {
	url    string
	client *http.Client
	close  func()
	// reuseBodies: the transport has written a request's body by the
	// time the client returns (connTransport; not http.Transport, whose
	// write loop may outlive the exchange), so the body's buffer can go
	// back to bodyBufs.
	reuseBodies bool
	// memo decodes the ACS's requests (the fleet's replyMemo).
	memo *replyMemo
}

// bodyBufs holds request body buffers: the answers to a bootstrap's
// GetParameterNames and GetParameterValues are 20-45 KB each, a large
// share of the simulator's garbage.
var bodyBufs = sync.Pool{New: func() any { return new([]byte) }}

// replyBufs holds the buffers the ACS's replies are read into. A fresh
// one per exchange (a bootstrap's GetParameterValues request is ~15 KB)
// was, with its growth, a fifth of the simulator's page faults in a
// storm, and a page fault costs ~10 µs on a paravirtualised box. Nothing
// decoded from a reply refers to its buffer (the codec copies what it
// keeps). Buffers over maxPooledReply are left to the collector.
var replyBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledReply = 256 << 10

func (d *Device) newSessionClient() (*sessionClient, error) {
	d.mu.Lock()
	acsURL := d.special("ManagementServer.URL")
	user, pass := d.special("ManagementServer.Username"), d.special("ManagementServer.Password")
	d.mu.Unlock()
	if acsURL == "" {
		acsURL = d.f.cfg.ACSURL
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, fmt.Errorf("cookie jar: %w", err)
	}
	base, closeFn, timeout := d.f.sessionTransport(d.f.cfg.SessionTimeout, d.source())
	rt := &cwmp.DigestTransport{Username: user, Password: pass, Base: base, AllowBasic: true}
	_, own := base.(*connTransport)
	return &sessionClient{
		url:         acsURL,
		client:      &http.Client{Transport: rt, Jar: jar, Timeout: timeout},
		close:       closeFn,
		reuseBodies: own,
		memo:        &d.f.replies,
	}, nil
}

// post sends env (nil: an empty POST) and returns the ACS's reply, nil
// when the ACS ended the session (204 or an empty 200).
func (c *sessionClient) post(ctx context.Context, env *cwmp.Envelope) (*cwmp.Envelope, error) {
	var body []byte
	if env != nil {
		var buf []byte
		if c.reuseBodies {
			bp := bodyBufs.Get().(*[]byte)
			buf = (*bp)[:0]
			defer func() {
				*bp = body[:0]
				bodyBufs.Put(bp)
			}()
		}
		var err error
		if body, err = cwmp.AppendEncode(buf, env); err != nil {
			return nil, fmt.Errorf("encode %s: %w", env.Body.Method(), err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("post to %s: %w", c.url, err)
	}
	if env != nil {
		// §3.4.1: SOAPAction present with no value; an empty POST carries
		// neither header.
		req.Header.Set("Content-Type", `text/xml; charset="utf-8"`)
		req.Header["SOAPAction"] = []string{""}
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("post to %s: %w", c.url, err)
	}
	defer resp.Body.Close()
	// Sized from Content-Length when the ACS sends one (the edge does):
	// io.ReadAll grows from 512 bytes, five copies for a 10 KB request.
	buf := replyBufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledReply {
			replyBufs.Put(buf)
		}
	}()
	if resp.ContentLength > 0 && resp.ContentLength <= maxReplySize {
		buf.Grow(int(resp.ContentLength) + bytes.MinRead)
	}
	_, err = buf.ReadFrom(io.LimitReader(resp.Body, maxReplySize+1))
	data := buf.Bytes()
	if err != nil {
		return nil, fmt.Errorf("read reply from %s: %w", c.url, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, fmt.Errorf("post to %s: %w", c.url, ErrUnauthorized)
	case resp.StatusCode == http.StatusNoContent:
		return nil, nil
	case resp.StatusCode == http.StatusServiceUnavailable:
		return nil, &busyError{after: retryAfter(resp.Header.Get("Retry-After"))}
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("post to %s: HTTP %s", c.url, resp.Status)
	case len(data) > maxReplySize:
		return nil, fmt.Errorf("reply from %s: %w", c.url, cwmp.ErrTooLarge)
	case len(bytes.TrimSpace(data)) == 0:
		return nil, nil
	}
	reply, err := c.memo.decode(data)
	if err != nil {
		return nil, fmt.Errorf("reply from %s: %w", c.url, err)
	}
	return reply, nil
}

// session runs one CWMP session: Inform, pending TransferCompletes, then
// the ACS's requests until it ends the session.
func (d *Device) session(ctx context.Context) (err error) {
	st := d.f.stats
	st.started.Add(1)
	d.mu.Lock()
	if d.retryCount > 0 {
		st.retries.Add(1)
	}
	d.mu.Unlock()
	inform, changed := d.buildInform()
	delivered := false
	defer func() {
		d.mu.Lock()
		if !delivered {
			// The values never reached the ACS: report them next time.
			d.tree.requeueChanged(changed)
		}
		d.mu.Unlock()
		if err != nil {
			// A session cut short by shutdown is not the ACS's failure.
			switch {
			case errors.Is(err, ErrBusy):
				st.busy.Add(1)
			case ctx.Err() == nil:
				st.errors.Add(1)
			}
			err = fmt.Errorf("device %s: %w", d.id, err)
		}
	}()

	// Opening the session waits its turn (Config.MaxConnecting): the
	// time waited is the simulator's, not the ACS's, so the session's
	// clock starts after it.
	if !d.f.connecting.enter(ctx) {
		return ctx.Err()
	}
	start := time.Now()
	c, err := d.newSessionClient()
	if err != nil {
		d.f.connecting.leave()
		return err
	}
	defer c.close()
	ns := cwmp.NS10
	reply, err := c.post(ctx, &cwmp.Envelope{Namespace: ns, ID: "1", HasID: true, Body: inform})
	d.f.connecting.leave()
	if err != nil {
		return err
	}
	if reply == nil {
		return fmt.Errorf("%w: ACS ended the session before InformResponse", errSession)
	}
	if _, ok := reply.Body.(*cwmp.InformResponse); !ok {
		return fmt.Errorf("%w: Inform answered with %s", errSession, describeMsg(reply.Body))
	}
	delivered = true
	codes := make([]string, len(inform.Event))
	for i, e := range inform.Event {
		codes[i] = e.Code
	}
	st.informEvents(codes)
	d.mu.Lock()
	d.retryCount = 0
	d.events = nil
	tcs := append([]cwmp.TransferComplete(nil), d.pendingTC...)
	d.mu.Unlock()
	if reply.Namespace != "" {
		ns = reply.Namespace
	}

	if !reply.HoldRequests {
		for i, tc := range tcs {
			r, err := c.post(ctx, &cwmp.Envelope{Namespace: ns, ID: fmt.Sprintf("tc-%d", i+1), HasID: true, Body: &tc})
			if err != nil {
				return err
			}
			if r == nil || r.Body == nil || r.Body.Method() != cwmp.MethodTransferCompleteResponse {
				return fmt.Errorf("%w: TransferComplete answered with %s", errSession, describeMsg(bodyOf(r)))
			}
			d.mu.Lock()
			d.removePendingTC(tc.CommandKey)
			d.mu.Unlock()
		}
	}

	reply, err = c.post(ctx, nil)
	for n := 0; err == nil && reply != nil && reply.Body != nil; n++ {
		if n >= maxRequestsPerSession {
			return fmt.Errorf("%w: more than %d ACS requests in one session", errSession, maxRequestsPerSession)
		}
		req := reply.Body
		if req.Method() == cwmp.MethodFault || strings.HasSuffix(req.Method(), "Response") {
			return fmt.Errorf("%w: ACS sent %s instead of a request", errSession, req.Method())
		}
		st.rpc(req.Method())
		ans := d.handle(req)
		if _, ok := ans.(*cwmp.Fault); ok {
			st.faults.Add(1)
		}
		if reply.Namespace != "" {
			ns = reply.Namespace
		}
		reply, err = c.post(ctx, &cwmp.Envelope{Namespace: ns, ID: reply.ID, HasID: reply.HasID, Body: ans})
	}
	if err != nil {
		return err
	}
	st.sessionDone(time.Since(start))
	return nil
}

func (d *Device) removePendingTC(key string) {
	for i, tc := range d.pendingTC {
		if tc.CommandKey == key {
			d.pendingTC = append(d.pendingTC[:i], d.pendingTC[i+1:]...)
			return
		}
	}
}

func bodyOf(env *cwmp.Envelope) cwmp.Message {
	if env == nil {
		return nil
	}
	return env.Body
}

func describeMsg(m cwmp.Message) string {
	if m == nil {
		return "an empty reply"
	}
	if f, ok := m.(*cwmp.Fault); ok {
		return fmt.Sprintf("fault %d %s", f.Code, f.String)
	}
	return m.Method()
}
