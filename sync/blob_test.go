package sync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	gosync "sync"
	"testing"
	"time"
)

// OpenBlob serves the blobs a test put with putBlob.
func (c *memCore) OpenBlob(sum string) (io.ReadSeekCloser, int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.blobs[sum]
	if !ok {
		return nil, 0, fmt.Errorf("blob %s: %w", sum, ErrUnknownBlob)
	}
	return nopCloser{bytes.NewReader(b)}, int64(len(b)), nil
}

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }

// putBlob stores n pseudo-random bytes and returns their sum and content.
func (c *memCore) putBlob(n int, seed uint64) (string, []byte) {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	h := sha256.Sum256(b)
	sum := hex.EncodeToString(h[:])
	c.mu.Lock()
	if c.blobs == nil {
		c.blobs = map[string][]byte{}
	}
	c.blobs[sum] = b
	c.mu.Unlock()
	return sum, b
}

func fetch(t *testing.T, cl *testClient, sum string, offset int64) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var buf bytes.Buffer
	n, err := cl.FetchBlob(ctx, sum, offset, &buf)
	if err == nil && n != int64(buf.Len()) {
		t.Fatalf("FetchBlob reported %d bytes, wrote %d", n, buf.Len())
	}
	return buf.Bytes(), err
}

func TestBlobFetch(t *testing.T) {
	noLeaks(t)
	p := newPKI(t)
	core := newMemCore(true)
	// Larger than the stream's initial flow-control window.
	sum, content := core.putBlob(3<<20+17, 1)
	small, smallContent := core.putBlob(10, 2)
	srv := startServer(t, p, "c1", "127.0.0.1:0", core)
	cl := startClient(t, p, "e1", srv.Addr())

	if _, err := fetch(t, cl, sum, 0); !errors.Is(err, ErrLinkDown) && !cl.Status().Connected {
		t.Fatalf("fetch before the link is up = %v, want ErrLinkDown", err)
	}
	waitFor(t, "connected", func() bool { return cl.Status().Connected })

	got, err := fetch(t, cl, sum, 0)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("whole fetch: %d bytes, %v", len(got), err)
	}
	got, err = fetch(t, cl, sum, 1_000_003)
	if err != nil || !bytes.Equal(got, content[1_000_003:]) {
		t.Fatalf("fetch from an offset: %d bytes, %v", len(got), err)
	}
	got, err = fetch(t, cl, sum, int64(len(content)))
	if err != nil || len(got) != 0 {
		t.Fatalf("fetch from the end: %d bytes, %v", len(got), err)
	}
	unknown := hex.EncodeToString(make([]byte, 32))
	if _, err := fetch(t, cl, unknown, 0); !errors.Is(err, ErrUnknownBlob) {
		t.Fatalf("unknown blob: %v, want ErrUnknownBlob", err)
	}
	var pe *PeerError
	if _, err := fetch(t, cl, small, 11); !errors.As(err, &pe) {
		t.Fatalf("offset past the end: %v, want a PeerError", err)
	}

	// More fetches at once than the per-edge bound, while records flow:
	// every fetch completes and the link stays up.
	cl.out.add(500)
	var wg gosync.WaitGroup
	errs := make(chan error, 3*MaxBlobStreams)
	for i := range 3 * MaxBlobStreams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, want := sum, content
			if i%2 == 1 {
				s, want = small, smallContent
			}
			var buf bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := cl.FetchBlob(ctx, s, 0, &buf); err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(buf.Bytes(), want) {
				errs <- fmt.Errorf("fetch %d: wrong bytes", i)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitFor(t, "uplink drained beside the fetches", func() bool { return len(core.appliedOf("e1")) == 500 })
	if !cl.Status().Connected {
		t.Fatal("the link dropped")
	}
}

// dropAfter passes writes through and, once more than n bytes went by,
// stops the core once (in the background: the core's shutdown waits for
// the stream this write is reading from).
type dropAfter struct {
	w    io.Writer
	n    int64
	seen int64
	once gosync.Once
	stop func()
	done chan struct{}
}

func (d *dropAfter) Write(p []byte) (int, error) {
	d.seen += int64(len(p))
	if d.seen > d.n {
		d.once.Do(func() {
			go func() { d.stop(); close(d.done) }()
		})
	}
	return d.w.Write(p)
}

func TestBlobFetchResumesAfterLinkDrop(t *testing.T) {
	noLeaks(t)
	p := newPKI(t)
	core := newMemCore(true)
	sum, content := core.putBlob(8<<20, 3)
	srv := startServer(t, p, "c1", "127.0.0.1:0", core)
	addr := srv.Addr()
	cl := startClient(t, p, "e1", addr)
	waitFor(t, "connected", func() bool { return cl.Status().Connected })

	var part bytes.Buffer
	drop := &dropAfter{w: &part, n: 1 << 20, stop: srv.stop, done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, err := cl.FetchBlob(ctx, sum, 0, drop)
	<-drop.done
	if err == nil {
		t.Skip("the whole blob crossed before the core stopped; nothing to resume")
	}
	if n != int64(part.Len()) || !bytes.Equal(part.Bytes(), content[:n]) {
		t.Fatalf("a cut fetch reported %d bytes and wrote %d; they must be the blob's prefix", n, part.Len())
	}
	t.Logf("link dropped after %d bytes: %v", n, err)
	waitFor(t, "link down", func() bool { return !cl.Status().Connected })
	if _, err := fetch(t, cl, sum, n); !errors.Is(err, ErrLinkDown) {
		t.Fatalf("fetch with the link down = %v, want ErrLinkDown", err)
	}

	startServer(t, p, "c1", addr, core)
	waitFor(t, "reconnected", func() bool { return cl.Status().Connected })
	rest, err := fetch(t, cl, sum, n)
	if err != nil {
		t.Fatalf("resume from %d: %v", n, err)
	}
	if !bytes.Equal(append(part.Bytes(), rest...), content) {
		t.Fatal("prefix + resumed rest differ from the blob")
	}
}

func TestBlobStreamOfWrongRoleClosesLink(t *testing.T) {
	noLeaks(t)
	p := newPKI(t)
	core := newMemCore(true)
	srv := startServer(t, p, "c1", "127.0.0.1:0", core)
	c := rawDial(t, p.dir, "e1", srv.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ctl, err := openStream(ctx, c, streamControl)
	must(t, err)
	must(t, writeFrame(ctl, &frame{T: fHello, Version: ProtocolVersion, Edge: "e1"}))
	if _, err := newFrameReader(ctl).expect(fWelcome); err != nil {
		t.Fatal(err)
	}
	_, err = openStream(ctx, c, streamUplink)
	must(t, err)
	_, err = openStream(ctx, c, streamDownlink)
	must(t, err)
	// A fourth stream must be a blob stream.
	if err := sendRaw(c, []byte{streamUplink}); err == nil {
		t.Fatal("the core answered a stream of the wrong role")
	}
	waitFor(t, "the refusal logged", func() bool { return stringsContain(srv.logs.String(), "stream role") })
}
