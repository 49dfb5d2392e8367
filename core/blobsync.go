package core

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgeacs/edgeacs/blob"
	fleetsync "github.com/edgeacs/edgeacs/sync"
)

// Blob replication. A file's bytes are stored on the node that received
// the upload; only its metadata goes through Raft. Every node must still
// be able to serve every file (to an edge on the sync link, which ends at
// whichever node leads, and on GET .../content), so each node runs
// blobLoop: when the fleet-wide downlink log moves (file metadata was put
// or deleted, or a snapshot was installed) it looks for metadata naming a
// blob it lacks and fetches that blob from a member that has it, over the
// internal route GET /internal/v1/blobs/{sha256} on the member's Raft port
// (peer.go), resuming a cut fetch
// with a Range request and verifying the SHA-256 before the blob becomes
// visible (blob.Partial).

// Blob replication timing: failed fetches are retried with a doubling
// wait; a peer that stops sending for blobPeerStall is given up on.
const (
	blobRetryMin  = 500 * time.Millisecond
	blobRetryMax  = 30 * time.Second
	blobPeerStall = 30 * time.Second
)

// errPeerLacksBlob means the asked member does not hold the blob either.
var errPeerLacksBlob = errors.New("peer does not hold the blob")

// OpenBlob opens a blob for an edge's fetch over the sync link
// (fleetsync.Core). A blob this node does not hold yet wraps
// fleetsync.ErrUnknownBlob: blobLoop is fetching it, and the edge retries.
func (n *Node) OpenBlob(sum string) (io.ReadSeekCloser, int64, error) {
	f, err := n.blobs.Open(sum)
	if errors.Is(err, blob.ErrNotFound) || errors.Is(err, blob.ErrBadSum) {
		return nil, 0, fmt.Errorf("%w: %v", fleetsync.ErrUnknownBlob, err)
	}
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("stat blob %s: %w", sum, err)
	}
	return f, fi.Size(), nil
}

// internalBlob serves a blob's bytes to another core node (blobLoop),
// with Range support so a cut fetch resumes. It is served on the Raft
// port only, the cluster's trust boundary (peer.go), never on the client
// API.
func (n *Node) internalBlob(w http.ResponseWriter, r *http.Request) {
	sum := r.PathValue("sha256")
	f, err := n.blobs.Open(sum)
	if err != nil {
		writeError(w, fmt.Errorf("blob %s on %s: %w", sum, n.cfg.ID, err))
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"`+sum+`"`)
	http.ServeContent(w, r, "", time.Time{}, f)
}

// sharedSeq reads the fleet-wide downlink log's last sequence: it moves
// whenever file metadata is put or deleted, so blobLoop scans the files
// only then, not on every applied batch.
func (f *FSM) sharedSeq() (uint64, error) {
	var seq uint64
	err := f.view(func(txn *badger.Txn) error {
		b, err := getRaw(txn, []byte(kSharedSeq))
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(b) != 8 {
			return fmt.Errorf("%s: %d bytes, want 8", kSharedSeq, len(b))
		}
		seq = binary.BigEndian.Uint64(b)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read shared downlink position: %w", err)
	}
	return seq, nil
}

// blobLoop keeps this node holding every blob that file metadata names,
// until ctx ends. It owns its HTTP client (to peers' Raft ports) and
// closes its connections on the way out.
func (n *Node) blobLoop(ctx context.Context) {
	tr := n.newPeerTransport()
	tr.ResponseHeaderTimeout = 10 * time.Second
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	scanned, first := uint64(0), true
	wait := blobRetryMin
	retry := time.NewTimer(blobRetryMax)
	retry.Stop() // armed only while a blob is missing
	defer retry.Stop()
	due := false
	for {
		watch := n.fsm.Watch()
		seq, err := n.fsm.sharedSeq()
		if err != nil && !errors.Is(err, ErrClosed) { // closed: mid-restore or shutting down
			n.log.Warn("blob replication: read the file log position", "err", err)
		}
		if err == nil && (first || seq != scanned || due) {
			first, due, scanned = false, false, seq
			if missing := n.fetchMissingBlobs(ctx, client); missing > 0 {
				retry.Reset(wait)
				wait = min(wait*2, blobRetryMax)
			} else {
				wait = blobRetryMin
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-watch:
		case <-retry.C:
			due = true
		}
	}
}

// fetchMissingBlobs fetches every blob the file metadata names and this
// node lacks, each from the first member that has it, and returns how
// many are still missing.
func (n *Node) fetchMissingBlobs(ctx context.Context, client *http.Client) int {
	files, err := n.fsm.Files()
	if err != nil {
		n.log.Warn("blob replication: list files", "err", err)
		return 1
	}
	missing := 0
	seen := map[string]bool{}
	for _, f := range files {
		if seen[f.SHA256] || n.blobs.Has(f.SHA256) {
			continue
		}
		seen[f.SHA256] = true
		if ctx.Err() != nil {
			return missing + 1
		}
		if err := n.fetchBlob(ctx, client, f.SHA256, f.Size); err != nil {
			missing++
			if ctx.Err() == nil {
				n.log.Warn("blob replication: fetch failed; retrying later", "file", f.Name, "sha256", f.SHA256, "err", err)
			}
			continue
		}
		n.log.Info("blob replicated from a peer", "file", f.Name, "sha256", f.SHA256, "bytes", f.Size)
	}
	return missing
}

// fetchBlob asks the other members, in random order, for one blob.
func (n *Node) fetchBlob(ctx context.Context, client *http.Client, sum string, size int64) error {
	peers, err := n.peerRaftAddrs()
	if err != nil {
		return err
	}
	if len(peers) == 0 {
		return errors.New("no other member to fetch it from")
	}
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	var errs []error
	for _, addr := range peers {
		err := n.fetchBlobFrom(ctx, client, addr, sum, size)
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("from %s: %w", addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

// peerRaftAddrs lists the Raft addresses of the other members, from the
// raft configuration.
func (n *Node) peerRaftAddrs() ([]string, error) {
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	var out []string
	for _, s := range cf.Configuration().Servers {
		if string(s.ID) != n.cfg.ID {
			out = append(out, string(s.Address))
		}
	}
	return out, nil
}

// fetchBlobFrom fetches one blob from the member at (Raft) addr into a partial
// file, continuing after what an earlier attempt left there, and commits
// it once its size and SHA-256 check out.
func (n *Node) fetchBlobFrom(ctx context.Context, client *http.Client, addr, sum string, size int64) error {
	p, err := n.blobs.OpenPartial(sum, size)
	if err != nil {
		return err
	}
	defer p.Close()
	if size >= 0 && p.Offset() == size {
		return p.Commit() // complete before a crash, never committed
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, peerURL(addr, peerPathBlobs+sum), nil)
	if err != nil {
		return fmt.Errorf("blob request: %w", err)
	}
	off := p.Offset()
	if off > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-")
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("blob request: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return errPeerLacksBlob
	case resp.StatusCode == http.StatusOK && off > 0:
		// The peer sent the whole blob: start the partial over.
		p.Close()
		if err := n.blobs.RemovePartial(sum); err != nil {
			return err
		}
		if p, err = n.blobs.OpenPartial(sum, size); err != nil {
			return err
		}
		defer p.Close()
	case resp.StatusCode == http.StatusPartialContent && off > 0:
		if cr := resp.Header.Get("Content-Range"); !strings.HasPrefix(cr, "bytes "+strconv.FormatInt(off, 10)+"-") {
			return fmt.Errorf("answer to a range from %d has Content-Range %q", off, cr)
		}
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("blob request: HTTP %s", resp.Status)
	}
	// A peer that stops sending is given up on; one that keeps sending
	// may take as long as the blob needs.
	stall := time.AfterFunc(blobPeerStall, cancel)
	defer stall.Stop()
	body := readerFunc(func(b []byte) (int, error) {
		stall.Reset(blobPeerStall)
		return resp.Body.Read(b)
	})
	if _, err := io.Copy(p, body); err != nil {
		return fmt.Errorf("blob body after %d bytes: %w", p.Offset(), err)
	}
	return p.Commit()
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }
