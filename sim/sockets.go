package sim

import (
	"context"
	"net"
	"sync"
)

// socketReserve is how many of the process's file descriptors the socket
// bound leaves for everything else (the connection-request listeners and
// the connections to them, transfers, logs): a tenth, at least this many.
const socketReserve = 64

// socketBound is how many connections to the ACS a process may hold at
// once (Config.MaxSockets' default): its descriptor limit less a reserve;
// 0 (no bound) when the limit cannot be read or is past any fleet's need.
func socketBound() int {
	n := fdLimit()
	if n == 0 || n > 1<<22 {
		return 0
	}
	return max(int(n)-max(int(n)/10, socketReserve), 1)
}

// acquireSocket waits for room for one more connection to the ACS
// (Config.MaxSockets) and reports whether it got it; false when ctx ended
// first. A real CPE has a socket of its own: a simulator process holding
// tens of thousands of devices, all dialling in a storm's flood, ran out
// of descriptors (26,826 sessions of a 100k storm failed on "socket: too
// many open files" and backed off as if the ACS had failed them).
func (f *Fleet) acquireSocket(ctx context.Context) bool {
	if f.sockets == nil {
		return true
	}
	select {
	case f.sockets <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// releaseSocket gives back the room acquireSocket took.
func (f *Fleet) releaseSocket() {
	if f.sockets != nil {
		<-f.sockets
	}
}

// socketConn is a connection to the ACS counted against the bound until
// it is closed.
type socketConn struct {
	net.Conn
	f    *Fleet
	once sync.Once
}

func (c *socketConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.f.releaseSocket)
	return err
}
