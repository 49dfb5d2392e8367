// Package slotconn gives back the slot a connection holds (a token of a
// bound on open connections) exactly once, when the connection is first
// closed: the edge's listener bound and the simulator's socket bound.
package slotconn

import (
	"net"
	"sync"
)

// Conn is a connection holding a slot until it is closed.
type Conn struct {
	net.Conn
	release func()
	once    sync.Once
}

// New wraps c so that release runs once, at c's first Close.
func New(c net.Conn, release func()) *Conn {
	return &Conn{Conn: c, release: release}
}

// Close closes the connection and, the first time, gives back its slot.
func (c *Conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
