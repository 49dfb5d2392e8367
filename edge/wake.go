package edge

import (
	"sync"

	"github.com/edgeacs/edgeacs/fleet"
)

// Connection requests and open sessions. A device in a session runs the
// tasks queued meanwhile in that same session (SessionWork.nextTask looks
// again before the session ends), so a connection request sent then is
// useless at best: TR-069 lets the CPE refuse it (503), and in a device's
// first session the CPE refuses it for certain once the session has set
// the connection-request credentials the edge stores only when the
// session ends. Such a request waits for the session's end instead
// (Server.AfterSession), and goes out then only if the device still has
// tasks to run, with the credentials the session stored.

// endWatch holds the callbacks waiting for one session's end.
type endWatch struct {
	mu        sync.Mutex
	finishing bool // the session has had its last look at the device's tasks
	closed    bool // its results are committed: nothing more waits
	waiters   []endWaiter
}

type endWaiter struct {
	fn func(pending bool)
	// late: registered once the session was finishing, too late for
	// anything queued before to run in it.
	late bool
}

// add registers fn and reports true, unless the session has ended.
func (e *endWatch) add(fn func(pending bool)) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	e.waiters = append(e.waiters, endWaiter{fn: fn, late: e.finishing})
	return true
}

// finish records that the session will not look at the device's tasks again.
func (e *endWatch) finish() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.finishing = true
}

// close marks the session ended and returns the callbacks to call.
func (e *endWatch) close() []endWaiter {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	w := e.waiters
	e.waiters = nil
	return w
}

// AfterSession arranges for fn to be called once the device's open CWMP
// session has ended and its results are committed, and reports true; with
// no session open it reports false and never calls fn. pending says
// whether a connection request is still called for: when the device still
// has tasks to run, or when fn came after the session's last look at them
// (the session served nothing asked for then). It is false when the
// session ended with a Reboot or FactoryReset the CPE accepted (the CPE
// comes back on its own with a BOOT Inform), when a new session of the
// device replaced it (that one runs the tasks) and when the edge is
// shutting down. fn runs while the session is being closed and must not
// block.
func (s *Server) AfterSession(deviceID string, fn func(pending bool)) bool {
	sess, ok := s.byDevice.load(deviceID)
	if !ok {
		return false
	}
	return sess.end.add(fn)
}

// sessionEnded calls the callbacks that waited for sess to end (see
// AfterSession).
func (s *Server) sessionEnded(sess *session, outcome string, waiting []endWaiter) {
	if len(waiting) == 0 {
		return
	}
	quiet := outcome == outcomeReplaced || s.draining.Load() || sess.work.rebooting()
	left, known := false, false
	for _, w := range waiting {
		pending := false
		switch {
		case quiet:
		case w.late:
			pending = true
		default:
			if !known {
				left, known = sess.work.leftPending(), true
			}
			pending = left
		}
		w.fn(pending)
	}
}

// rebooting reports whether the CPE accepted a Reboot or FactoryReset in
// this session, a task's or a preset's: it comes back on its own, with a
// BOOT Inform, once the session ends.
func (w *SessionWork) rebooting() bool { return w.stop }

// leftPending reports whether the device has tasks still to run after
// this session ended.
func (w *SessionWork) leftPending() bool { return w.c.hasPending(w.dev.ID) }

// hasPending reports whether the device has a task waiting to be sent.
// When it cannot tell it says yes: a needless connection request costs
// one session, a missing one leaves the tasks until the next periodic
// Inform.
func (c *Cache) hasPending(deviceID string) bool {
	ts, err := c.PendingTasks(deviceID)
	if err != nil {
		c.log.Warn("cannot tell whether a device has tasks pending; waking it", "device", deviceID, "err", err)
		return true
	}
	for _, t := range ts {
		if t.Status == fleet.StatusPending {
			return true
		}
	}
	return false
}

// deferWake puts off the wake-up of a device in a session until the
// session's end (see AfterSession), and reports whether it did: the wake
// is queued again then if the session left tasks pending.
func (n *Node) deferWake(deviceID string) bool {
	return n.server.AfterSession(deviceID, func(pending bool) {
		if !pending {
			return
		}
		select {
		case n.wakeQ <- deviceID:
		default:
			n.log.Warn("connection request queue full; the task waits for the device's next inform", "device", deviceID)
		}
	})
}
