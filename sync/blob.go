package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	gosync "sync"
	"time"

	"github.com/quic-go/quic-go"
)

// Blob fetches. An edge fetches a file's content from the core on the
// link it already holds: it opens a stream with role streamBlob and sends
// one fBlobRequest {Sum, Offset}; the core answers with an fBlobHeader
// {Size} (or an fError, Missing when it has no such blob) and then the
// blob's raw bytes from Offset to the end, and closes the stream. Raw
// bytes, not frames, because a firmware image is hundreds of MiB and QUIC
// already frames, orders and flow-controls the stream. Offset makes a fetch
// cut short by a link drop resumable; the edge verifies the SHA-256 of the
// whole blob itself, so the core's answer is never trusted blindly.

// MaxBlobStreams bounds the blob streams one edge has open at once: the
// client waits for a slot, and the core serves at most this many per edge.
// Together with the control, uplink and downlink streams it stays under
// the QUIC stream limit (quicConfig), so a blob fetch never delays the
// records.
const MaxBlobStreams = 4

// blobStall bounds how long a blob stream may go without a byte moving
// while the link itself stays up (a stuck disk on the far side); a dead
// link is noticed sooner, by the QUIC idle timeout.
const blobStall = 30 * time.Second

var (
	// ErrUnknownBlob means the core has no blob with that sum (yet: a core
	// node that was not the one uploaded to fetches it from a peer first).
	// Core.OpenBlob wraps it; FetchBlob returns it wrapped.
	ErrUnknownBlob = errors.New("sync: the core has no such blob")
	// ErrLinkDown means FetchBlob was called while the edge has no live
	// session with the core.
	ErrLinkDown = errors.New("sync: the link to the core is down")
)

// Stream error codes of a blob stream cut short.
const (
	blobCancelled quic.StreamErrorCode = 1 // the fetcher gave up (context)
	blobFailed    quic.StreamErrorCode = 2 // the core could not read the blob
)

// FetchBlob fetches the blob with this SHA-256 (hex) from the core over
// the live link, writing its bytes from offset to the end into w, and
// returns how many it wrote. It fails at once with ErrLinkDown when there
// is no live session. On any error the bytes written so far are good (a
// prefix of what the core holds) and a later call can continue after
// them; the caller verifies the whole blob's sum.
func (c *Client) FetchBlob(ctx context.Context, sum string, offset int64, w io.Writer) (int64, error) {
	if offset < 0 {
		return 0, fmt.Errorf("fetch blob %s: negative offset %d", sum, offset)
	}
	conn := c.blobConn.Load()
	if conn == nil {
		return 0, fmt.Errorf("fetch blob %s: %w", sum, ErrLinkDown)
	}
	select {
	case c.blobSlots <- struct{}{}:
	case <-ctx.Done():
		return 0, fmt.Errorf("fetch blob %s: %w", sum, ctx.Err())
	}
	defer func() { <-c.blobSlots }()
	n, err := fetchBlob(ctx, conn, sum, offset, w)
	if err != nil {
		return n, fmt.Errorf("fetch blob %s from %d: %w", sum, offset, err)
	}
	return n, nil
}

func fetchBlob(ctx context.Context, conn *quic.Conn, sum string, offset int64, w io.Writer) (n int64, err error) {
	s, err := openStream(ctx, conn, streamBlob)
	if err != nil {
		return 0, err
	}
	// Stream reads do not watch ctx: cancelling it resets the stream.
	stop := context.AfterFunc(ctx, func() {
		s.CancelRead(blobCancelled)
		s.CancelWrite(blobCancelled)
	})
	defer stop()
	defer func() {
		if err != nil {
			// Free the stream at once; the core stops sending.
			s.CancelRead(blobCancelled)
			s.CancelWrite(blobCancelled)
			if ctx.Err() != nil {
				err = ctx.Err()
			}
		}
	}()
	if err := writeFrame(s, &frame{T: fBlobRequest, Sum: sum, Offset: offset}); err != nil {
		return 0, err
	}
	_ = s.Close() // nothing more to send
	_ = s.SetReadDeadline(time.Now().Add(DeadAfter))
	r := newFrameReader(s)
	f, err := r.read()
	if err != nil {
		return 0, fmt.Errorf("blob header: %w", err)
	}
	switch {
	case f.T == fError && f.Missing:
		return 0, fmt.Errorf("%w: %s", ErrUnknownBlob, f.Reason)
	case f.T == fError:
		return 0, &PeerError{Reason: f.Reason}
	case f.T != fBlobHeader:
		return 0, fmt.Errorf("%w: got a %s frame, want %s", ErrProtocol, f.T, fBlobHeader)
	case f.Size < offset:
		return 0, fmt.Errorf("%w: blob of %d bytes, asked from %d", ErrProtocol, f.Size, offset)
	}
	// The bytes follow the header in the same buffered reader.
	body := &stallReader{r: r.r, s: s}
	n, err = io.CopyN(w, body, f.Size-offset)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return n, fmt.Errorf("blob body after %d of %d bytes: %w", n, f.Size-offset, err)
	}
	if _, err := r.r.ReadByte(); !errors.Is(err, io.EOF) {
		if err == nil {
			err = fmt.Errorf("%w: bytes past the blob's %d", ErrProtocol, f.Size)
		}
		return n, err
	}
	return n, nil
}

// stallReader renews the stream's read deadline before every read, so a
// transfer that keeps moving is never cut, and one that stops is.
type stallReader struct {
	r io.Reader
	s *quic.Stream
}

func (sr *stallReader) Read(p []byte) (int, error) {
	_ = sr.s.SetReadDeadline(time.Now().Add(blobStall))
	return sr.r.Read(p)
}

// acceptBlobs accepts the edge's blob streams for as long as the session
// lasts and serves each on its own goroutine, at most MaxBlobStreams at a
// time. Only a stream of the wrong role is an error (it closes the link);
// an accept failing because the connection ended is left to the other
// streams to report.
func (cs *coreSession) acceptBlobs(ctx context.Context) error {
	slots := make(chan struct{}, MaxBlobStreams)
	var wg gosync.WaitGroup
	defer wg.Wait()
	for {
		s, err := acceptStream(ctx, cs.conn, streamBlob)
		if err != nil {
			if errors.Is(err, ErrProtocol) && ctx.Err() == nil {
				return err
			}
			return nil
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			s.CancelRead(blobCancelled)
			s.CancelWrite(blobCancelled)
			return nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			cs.serveBlob(s)
		}()
	}
}

// serveBlob answers one blob request. A failure concerns this fetch only:
// the edge gets an error frame, or a reset stream, and tries again.
func (cs *coreSession) serveBlob(s *quic.Stream) {
	log := cs.srv.log.With("edge", cs.name)
	_ = s.SetReadDeadline(time.Now().Add(DeadAfter))
	f, err := newFrameReader(s).expect(fBlobRequest)
	if err != nil {
		log.Warn("bad blob request", "err", err)
		s.CancelRead(blobFailed)
		s.CancelWrite(blobFailed)
		return
	}
	s.CancelRead(0) // the request is all the edge sends
	refuse := func(missing bool, reason string) {
		_ = writeFrame(s, &frame{T: fError, Missing: missing, Reason: reason})
		_ = s.Close()
	}
	rc, size, err := cs.srv.cfg.Core.OpenBlob(f.Sum)
	if err != nil {
		missing := errors.Is(err, ErrUnknownBlob)
		if !missing {
			log.Warn("open blob for an edge", "sha256", f.Sum, "err", err)
		}
		refuse(missing, err.Error())
		return
	}
	defer rc.Close()
	if f.Offset > size {
		refuse(false, fmt.Sprintf("offset %d is past the blob's %d bytes", f.Offset, size))
		return
	}
	if _, err := rc.Seek(f.Offset, io.SeekStart); err != nil {
		log.Warn("seek blob for an edge", "sha256", f.Sum, "err", err)
		refuse(false, "cannot read the blob")
		return
	}
	if err := writeFrame(s, &frame{T: fBlobHeader, Size: size}); err != nil {
		s.CancelWrite(blobFailed)
		return
	}
	want := size - f.Offset
	n, err := io.Copy(s, io.LimitReader(rc, want))
	if err == nil && n != want {
		err = fmt.Errorf("blob ended after %d of %d bytes", n, want)
	}
	if err != nil {
		// A reset, not a clean end: the edge must not take a short blob
		// for a whole one (it would fail the sum check anyway).
		log.Debug("blob stream cut", "sha256", f.Sum, "sent", n, "err", err)
		s.CancelWrite(blobFailed)
		return
	}
	_ = s.Close()
}
