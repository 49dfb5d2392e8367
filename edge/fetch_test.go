package edge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
)

var errLinkDropped = errors.New("fake link dropped")

// fakeFetcher stands in for the sync client. Call i serves serve(i) from
// the offset asked; cut[i] > 0 ends call i after that many bytes with an
// error, as a link drop would; the first call waits for gate when set.
type fakeFetcher struct {
	serve func(call int) []byte
	cut   map[int]int
	gate  chan struct{}

	mu      sync.Mutex
	offsets []int64
	once    sync.Once
	started chan struct{} // closed when the first call begins
}

func newFakeFetcher(serve func(int) []byte) *fakeFetcher {
	return &fakeFetcher{serve: serve, cut: map[int]int{}, started: make(chan struct{})}
}

func (f *fakeFetcher) FetchBlob(ctx context.Context, sum string, offset int64, w io.Writer) (int64, error) {
	f.mu.Lock()
	call := len(f.offsets)
	f.offsets = append(f.offsets, offset)
	f.mu.Unlock()
	f.once.Do(func() { close(f.started) })
	if call == 0 && f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	b := f.serve(call)
	if offset > int64(len(b)) {
		return 0, fmt.Errorf("offset %d past %d", offset, len(b))
	}
	b = b[offset:]
	if c := f.cut[call]; c > 0 && c < len(b) {
		n, err := w.Write(b[:c])
		if err != nil {
			return int64(n), err
		}
		return int64(n), errLinkDropped
	}
	n, err := w.Write(b)
	return int64(n), err
}

func (f *fakeFetcher) calls() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.offsets)
}

func blobMeta(name string, content []byte) fleet.FileMeta {
	h := sha256.Sum256(content)
	return fleet.FileMeta{Name: name, FileType: "1 Firmware Upgrade Image", Size: int64(len(content)),
		SHA256: hex.EncodeToString(h[:]), Uploaded: t0}
}

// runFetcher runs fs's fetcher until the test ends.
func runFetcher(t *testing.T, fs *FileStore) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); fs.RunFetcher(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestDownloadTaskFetchesBlobFromCore: a download task from the core
// starts fetching its file before any CPE asks; the session the task's
// connection request opens holds the Download while the blob is on its
// way (the CPE would fail it), a CPE asking anyway gets 503; the fetch
// survives a link drop by continuing from the bytes it has, and once the
// blob is verified the device is woken, downloads it and the task is done.
func TestDownloadTaskFetchesBlobFromCore(t *testing.T) {
	content := bytes.Repeat([]byte("firmware 7.7.7 "), 20_000) // 300 kB
	meta := blobMeta("fw_v7.7.7.bin", content)
	f := newFakeFetcher(func(int) []byte { return content })
	f.gate = make(chan struct{})
	f.cut[0] = len(content) / 3
	e := startEdgeWith(t, "", nil, func(n *Node) { n.SetBlobFetcher(f) })
	fl := startFleet(t, e, 1, nil)
	waitInformed(t, e, fl)
	d := fl.Device(0)
	before := e.device(d.ID()).LastInform

	id := ulid.Make().String()
	task := &fleet.Task{ID: id, Device: d.ID(), Name: fleet.TaskDownload, FileName: meta.Name,
		FileType: meta.FileType, Status: fleet.StatusPending, Timestamp: t0}
	mustStore(t, e.node.Cache(),
		fleet.DownRecord{Seq: 1, Kind: fleet.DownTask, Wake: true, Task: task},
		fleet.DownRecord{Seq: 1, Shared: true, Kind: fleet.DownFile, File: &meta})
	select {
	case <-f.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the fetch did not start when the task arrived")
	}

	// The connection request's session runs, and holds the Download.
	waitFor(t, 20*time.Second, "the session the task's connection request opens", func() bool {
		dev := e.device(d.ID())
		return dev.LastInform.After(before) && slices.Contains(dev.LastEvents, cwmp.EventConnectionRequest) &&
			e.node.Server().OpenSessions() == 0
	})
	got, err := e.node.Cache().Task(id)
	if err != nil || got.Status != fleet.StatusPending || got.Attempts != 0 {
		t.Fatalf("task while its file is fetched: %+v, %v; want pending and never sent", got, err)
	}
	// A CPE with a URL the edge signed earlier (files_auth is on).
	resp, err := http.Get(e.acs + "files/" + meta.Name + "?" + e.node.Cache().signedFileQuery(meta.Name, time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("GET of a file still being fetched: %s, Retry-After %q; want 503 with Retry-After", resp.Status, resp.Header.Get("Retry-After"))
	}

	close(f.gate)
	done := e.waitTask(id, 30*time.Second)
	if done.Status != fleet.StatusDone {
		t.Fatalf("download task: %s %+v", done.Status, done.Fault)
	}
	if calls := f.calls(); len(calls) != 2 || calls[0] != 0 || calls[1] != int64(len(content)/3) {
		t.Fatalf("fetch offsets %v, want [0 %d]: the second attempt continues after the first", calls, len(content)/3)
	}
	waitFor(t, 15*time.Second, "the new firmware in an Inform", func() bool {
		return e.device(d.ID()).SoftwareVersion == "7.7.7"
	})
	rc, _, err := e.node.Files().Open(meta.Name)
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(served, content) {
		t.Fatal("the file served differs from the core's")
	}
	if ps, _ := e.node.Files().blobs.Partials(); len(ps) != 0 {
		t.Fatalf("partial fetches left: %v", ps)
	}
}

// TestFetchRefusesCorruptBlob: bytes that do not hash to the file's sum
// never become visible; the fetch starts over and the good bytes win. The
// task arrives before its file's metadata (they travel on different
// logs), and the fetch starts when the metadata does.
func TestFetchRefusesCorruptBlob(t *testing.T) {
	c := openTestCache(t, "")
	fs, err := OpenFileStore(t.TempDir(), c)
	if err != nil {
		t.Fatal(err)
	}
	content := bytes.Repeat([]byte("config "), 5000)
	corrupt := slices.Clone(content)
	corrupt[1234] ^= 0x55
	meta := blobMeta("cfg.xml", content)
	f := newFakeFetcher(func(call int) []byte {
		if call == 0 {
			return corrupt
		}
		return content
	})
	f.gate = make(chan struct{})
	woken := make(chan string, 4)
	fs.SetFetcher(f, func(d string) { woken <- d })
	runFetcher(t, fs)

	task := &fleet.Task{ID: ulid.Make().String(), Device: devID, Name: fleet.TaskDownload, FileName: meta.Name,
		Status: fleet.StatusPending, Timestamp: t0}
	mustStore(t, c, fleet.DownRecord{Seq: 1, Kind: fleet.DownTask, Task: task})
	if n := len(f.calls()); n != 0 {
		t.Fatalf("%d fetches before the file's metadata arrived", n)
	}
	mustStore(t, c, fleet.DownRecord{Seq: 1, Shared: true, Kind: fleet.DownFile, File: &meta})
	select {
	case <-f.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the fetch did not start when the file's metadata arrived")
	}
	// A session wanting the file now waits for it.
	if fs.awaitBlob(meta, devID) {
		t.Fatal("awaitBlob says a blob still on its way is here")
	}
	if _, _, err := fs.Open(meta.Name); !errors.Is(err, ErrFileNotReady) {
		t.Fatalf("Open while fetching: %v, want ErrFileNotReady", err)
	}
	close(f.gate)
	waitFor(t, 20*time.Second, "the good blob", func() bool { return fs.Fetched() == 1 })
	if calls := f.calls(); len(calls) != 2 || calls[0] != 0 || calls[1] != 0 {
		t.Fatalf("fetch offsets %v, want [0 0]: corrupt bytes are dropped, not continued", calls)
	}
	rc, _, err := fs.Open(meta.Name)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, content) {
		t.Fatal("served bytes differ from the file's")
	}
	select {
	case d := <-woken:
		if d != devID {
			t.Fatalf("woke %q", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting device was not woken")
	}
}

// TestFetchResumesPartialAfterRestart: a fetch cut short by a restart
// continues from the bytes on disk; a partial no file names is dropped.
func TestFetchResumesPartialAfterRestart(t *testing.T) {
	dir := t.TempDir()
	c := openTestCache(t, "")
	content := bytes.Repeat([]byte("image "), 10_000)
	meta := blobMeta("fw.bin", content)
	if _, err := c.putFileMeta(meta); err != nil {
		t.Fatal(err)
	}
	fs, err := OpenFileStore(dir, c)
	if err != nil {
		t.Fatal(err)
	}
	p, err := fs.blobs.OpenPartial(meta.SHA256, meta.Size)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write(content[:7000]); err != nil {
		t.Fatal(err)
	}
	p.Close()
	orphan := blobMeta("gone.bin", []byte("deleted meanwhile"))
	if p, err = fs.blobs.OpenPartial(orphan.SHA256, orphan.Size); err != nil {
		t.Fatal(err)
	}
	p.Write([]byte("dele"))
	p.Close()

	// The restart.
	fs, err = OpenFileStore(dir, c)
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeFetcher(func(int) []byte { return content })
	fs.SetFetcher(f, nil)
	runFetcher(t, fs)
	waitFor(t, 20*time.Second, "the resumed fetch", func() bool { return fs.Fetched() == 1 })
	if calls := f.calls(); len(calls) != 1 || calls[0] != 7000 {
		t.Fatalf("fetch offsets %v, want [7000]", calls)
	}
	if ps, _ := fs.blobs.Partials(); len(ps) != 0 {
		t.Fatalf("partials left: %v", ps)
	}
	rc, _, err := fs.Open("fw.bin")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, content) {
		t.Fatal("resumed blob differs")
	}
}
