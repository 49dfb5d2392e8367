package core

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/blob"
	fleetsync "github.com/edgeacs/edgeacs/sync"
)

// TestBlobsReplicateToEveryNode uploads a file to a follower: every other
// node fetches the blob from a peer, serves the content, and can hand it
// to an edge (OpenBlob).
func TestBlobsReplicateToEveryNode(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leaderOf(t, nodes)
	follower := followerOf(nodes)
	content := bytes.Repeat([]byte("firmware-image "), 200_000) // 3 MB
	h := sha256.Sum256(content)
	sum := hex.EncodeToString(h[:])
	req, _ := http.NewRequest("PUT", api(follower, "/files/fw_v2.bin"), bytes.NewReader(content))
	req.Header.Set("fileType", "1 Firmware Upgrade Image")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("PUT file via follower: %v %v", err, resp)
	}
	resp.Body.Close()

	for _, n := range nodes {
		waitFor(t, "the blob on "+n.ID(), 20*time.Second, func() bool { return n.blobs.Has(sum) })
		resp, err := http.Get(api(n, "/files/fw_v2.bin/content"))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Equal(got, content) {
			t.Fatalf("content on %s: %d, %d bytes", n.ID(), resp.StatusCode, len(got))
		}
		rc, size, err := n.OpenBlob(sum)
		if err != nil || size != int64(len(content)) {
			t.Fatalf("OpenBlob on %s: %d %v", n.ID(), size, err)
		}
		rc.Close()
		if ps, _ := n.blobs.Partials(); len(ps) != 0 {
			t.Fatalf("partial fetches left on %s: %v", n.ID(), ps)
		}
	}
	if _, _, err := nodes[0].OpenBlob(strings.Repeat("0", 64)); !errors.Is(err, fleetsync.ErrUnknownBlob) {
		t.Fatalf("OpenBlob of an unknown blob: %v, want ErrUnknownBlob", err)
	}
	// The internal route, on the Raft port, answers ranges (a resumed fetch).
	rq, _ := http.NewRequest("GET", "http://"+nodes[1].RaftAddr()+"/internal/v1/blobs/"+sum, nil)
	rq.Header.Set("Range", "bytes=100-")
	resp, err = http.DefaultClient.Do(rq)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, content[100:]) {
		t.Fatalf("range request: %d, %d bytes", resp.StatusCode, len(got))
	}
}

// blobPeer serves one blob like the internal route does and records the
// Range of every request; cutAfter > 0 ends the first answer after that
// many bytes, as a peer that dies mid-transfer would.
type blobPeer struct {
	content  []byte
	cutAfter int
	mu       sync.Mutex
	ranges   []string
}

func (p *blobPeer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.ranges = append(p.ranges, r.Header.Get("Range"))
	first := len(p.ranges) == 1
	p.mu.Unlock()
	if first && p.cutAfter > 0 {
		w.Header().Set("Content-Length", "999999999")
		w.Write(p.content[:p.cutAfter])
		panic(http.ErrAbortHandler) // the connection drops mid-body
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(p.content))
}

func (p *blobPeer) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.ranges...)
}

// blobOnlyNode is enough of a Node to run fetchBlobFrom against a peer.
func blobOnlyNode(t *testing.T) *Node {
	t.Helper()
	s, err := blob.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &Node{cfg: Config{ID: "n9"}, blobs: s, log: testLogger()}
}

func TestBlobFetchFromPeerResumesAndVerifies(t *testing.T) {
	content := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	h := sha256.Sum256(content)
	sum := hex.EncodeToString(h[:])
	size := int64(len(content))
	peer := &blobPeer{content: content, cutAfter: 300_000}
	srv := httptest.NewServer(peer)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	n := blobOnlyNode(t)
	ctx := context.Background()

	// The peer dies mid-body: the bytes received stay, and the next
	// attempt asks only for the rest.
	if err := n.fetchBlobFrom(ctx, http.DefaultClient, addr, sum, size); err == nil {
		t.Fatal("a fetch cut short succeeded")
	}
	if n.blobs.Has(sum) {
		t.Fatal("a cut fetch made the blob visible")
	}
	if err := n.fetchBlobFrom(ctx, http.DefaultClient, addr, sum, size); err != nil {
		t.Fatalf("resumed fetch: %v", err)
	}
	if r := peer.seen(); len(r) != 2 || r[0] != "" || !strings.HasPrefix(r[1], "bytes=") || r[1] == "bytes=0-" {
		t.Fatalf("ranges asked: %q, want none then the rest", r)
	}
	f, err := n.blobs.Open(sum)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, content) {
		t.Fatal("resumed blob differs")
	}

	// A peer whose bytes do not hash to the sum: refused, nothing visible,
	// and the partial is dropped so the next attempt starts over.
	bad := append([]byte(nil), content...)
	bad[len(bad)/2] ^= 0xff
	liar := httptest.NewServer(&blobPeer{content: bad})
	defer liar.Close()
	n2 := blobOnlyNode(t)
	err = n2.fetchBlobFrom(ctx, http.DefaultClient, strings.TrimPrefix(liar.URL, "http://"), sum, size)
	if !errors.Is(err, blob.ErrCorrupt) {
		t.Fatalf("fetch of corrupt bytes: %v, want ErrCorrupt", err)
	}
	if n2.blobs.Has(sum) {
		t.Fatal("corrupt bytes became a blob")
	}
	if ps, _ := n2.blobs.Partials(); len(ps) != 0 {
		t.Fatalf("corrupt partial kept: %v", ps)
	}
	// A peer without the blob says so.
	empty := httptest.NewServer(http.NotFoundHandler())
	defer empty.Close()
	if err := n2.fetchBlobFrom(ctx, http.DefaultClient, strings.TrimPrefix(empty.URL, "http://"), sum, size); !errors.Is(err, errPeerLacksBlob) {
		t.Fatalf("fetch from a peer without it: %v", err)
	}
}
