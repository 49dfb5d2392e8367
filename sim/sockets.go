package sim

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
