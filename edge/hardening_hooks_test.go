package edge

import "time"

// Hooks into configuration and internals for hardening_test.go, kept in
// one place so the tests read as HTTP exchanges.

func setFilesAuth(c *Config, on bool)             { c.FilesAuth = &on }
func setAllowDigestWithoutQOP(c *Config)          { c.AllowDigestWithoutQOP = true }
func setMaxUnauthenticatedPerIP(c *Config, n int) { c.MaxUnauthenticatedPerIP = n }
func setAPITimeouts(c *Config, d time.Duration) {
	c.apiTimeouts = httpTimeouts{header: d, body: d, idle: d, upload: d}
}
func setChallengeGrace(c *Config, d time.Duration) { c.challengeGrace = d }
func signFileURL(e *testEdge, name string, exp time.Time) string {
	return e.node.Cache().signedFileQuery(name, exp)
}

// unauthenticatedInFlight is how many requests from ip the CWMP server
// holds before authenticating them.
func unauthenticatedInFlight(e *testEdge, ip string) int {
	s := e.node.Server()
	s.preauth.mu.Lock()
	defer s.preauth.mu.Unlock()
	return s.preauth.m[ip]
}

// wakesAfterSession is how many connection requests wait for the end of
// the device's open session.
func wakesAfterSession(e *testEdge, id string) int {
	sess, ok := e.node.Server().byDevice.load(id)
	if !ok {
		return 0
	}
	sess.end.mu.Lock()
	defer sess.end.mu.Unlock()
	return len(sess.end.waiters)
}
