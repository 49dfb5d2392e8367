// Package edge is the ACS process that runs at a POP: the CWMP HTTP(S)
// server, the session driver, CPE authentication, the Badger device cache,
// the task executor, preset evaluation, connection requests (HTTP digest and
// TR-111 UDP/STUN), and the file cache that serves firmware to CPEs.
package edge
