// Package sync is the QUIC link between edges and the core: framing, the
// handshake, durable queues on both sides, acknowledgements, resume after an
// outage and redirects to the Raft leader. Importers alias it as fleetsync so
// that the standard library's sync stays readable.
package sync
