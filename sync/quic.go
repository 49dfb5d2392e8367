package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/quic-go/quic-go"
)

// Application error codes a side closes the QUIC connection with. The
// message beside the code says why, for the other side's log.
const (
	codeClosed   quic.ApplicationErrorCode = 0 // orderly shutdown
	codeProtocol quic.ApplicationErrorCode = 1 // the peer broke the protocol
	codeRefused  quic.ApplicationErrorCode = 2 // identity refused (role, revoked, name)
	codeLeader   quic.ApplicationErrorCode = 3 // this core is not (or no longer) the leader
	codeReplaced quic.ApplicationErrorCode = 4 // a newer connection of the same edge took over
	codeInternal quic.ApplicationErrorCode = 5 // the core could not apply (storage, raft)
	codeBusy     quic.ApplicationErrorCode = 6 // the core is at its connection limit; back off
)

// Link timing. A dead link is noticed within DeadAfter by both sides:
// QUIC keep-alives flow every KeepAlive, and a connection with no packet
// for DeadAfter is closed.
const (
	KeepAlive = time.Second
	DeadAfter = 5 * time.Second
)

// quicConfig is the transport configuration both sides use. Stream and
// connection windows bound what a peer can make the other side buffer.
func quicConfig() *quic.Config {
	// MaxIncomingStreams: control, uplink, downlink and MaxBlobStreams
	// blob streams, with room for finished blob streams whose credit the
	// peer has not yet been given back.
	return &quic.Config{
		HandshakeIdleTimeout:           DeadAfter,
		MaxIdleTimeout:                 DeadAfter,
		KeepAlivePeriod:                KeepAlive,
		MaxIncomingStreams:             16,
		MaxIncomingUniStreams:          -1,
		InitialStreamReceiveWindow:     1 << 20,
		MaxStreamReceiveWindow:         16 << 20,
		InitialConnectionReceiveWindow: 2 << 20,
		MaxConnectionReceiveWindow:     32 << 20,
	}
}

// closeReason turns the error a QUIC call returned into something a log
// line can say: the peer's own reason when it closed on purpose.
func closeReason(err error) string {
	var ae *quic.ApplicationError
	if errors.As(err, &ae) {
		who := "local"
		if ae.Remote {
			who = "peer"
		}
		return fmt.Sprintf("%s closed (code %d): %s", who, ae.ErrorCode, ae.ErrorMessage)
	}
	var ie *quic.IdleTimeoutError
	if errors.As(err, &ie) {
		return "link dead: no packet for " + DeadAfter.String()
	}
	var he *quic.HandshakeTimeoutError
	if errors.As(err, &he) {
		return "handshake timed out"
	}
	if errors.Is(err, io.EOF) {
		return "stream closed"
	}
	return err.Error()
}

// openStream opens a stream of the given role (the role byte is written at
// once, so the peer's AcceptStream returns).
func openStream(ctx context.Context, conn *quic.Conn, role byte) (*quic.Stream, error) {
	s, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("open %c stream: %w", role, err)
	}
	if _, err := s.Write([]byte{role}); err != nil {
		return nil, fmt.Errorf("open %c stream: %w", role, err)
	}
	return s, nil
}

// acceptStream accepts the next stream and checks its role byte.
func acceptStream(ctx context.Context, conn *quic.Conn, role byte) (*quic.Stream, error) {
	s, err := conn.AcceptStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("accept %c stream: %w", role, err)
	}
	var b [1]byte
	if _, err := io.ReadFull(s, b[:]); err != nil {
		return nil, fmt.Errorf("accept %c stream: %w", role, err)
	}
	if b[0] != role {
		return nil, fmt.Errorf("%w: stream role %q, want %q", ErrProtocol, b[0], role)
	}
	return s, nil
}
