package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeacs/edgeacs/blob"
	"github.com/edgeacs/edgeacs/fleet"
)

// BlobFetcher fetches a file's content from the core over the sync link.
// cmd/edgeacs wires it to the sync client (edge does not import sync).
type BlobFetcher interface {
	// FetchBlob writes the bytes of the blob with this SHA-256 (hex) from
	// offset to the end into w and returns how many it wrote. It fails at
	// once when the link is down. The bytes written before an error are a
	// prefix of the blob, so a later call continues after them; the caller
	// verifies the whole blob's sum.
	FetchBlob(ctx context.Context, sha256 string, offset int64, w io.Writer) (int64, error)
}

// ErrFileNotReady means the file's metadata is here but its content is
// still coming from the core (CPE download → 503 with Retry-After).
var ErrFileNotReady = errors.New("edge: file content is still being fetched from the core")

// Fetching. A file's metadata reaches the edge on the downlink; its blob
// crosses the backhaul only when a task needs it, once per POP:
//
//   - A download task (DownTask, fileName, no url) that arrives on the
//     downlink starts the fetch at once, before any CPE asks, so the CPE
//     never waits on the backhaul. If the file's metadata has not arrived
//     yet (it travels on the fleet-wide log, the task on the edge's own),
//     the name is remembered and the fetch starts when it does.
//   - A session holds a Download whose blob is not here yet (and every task
//     after it, so the device's tasks keep their order), starts the fetch
//     if none runs, and the device is sent a connection request when the
//     blob lands (FileStore.awaitBlob).
//   - A CPE that asks for such a file anyway gets 503 with Retry-After and
//     starts the fetch too.
//
// A fetch streams into <files>/blobs/<sha256>.part; after a link drop, a
// failure or a restart it continues from the bytes already there. The
// blob becomes visible only once its size and SHA-256 match the metadata
// (blob.Partial.Commit): bytes that do not are thrown away and fetched
// again. Failures are retried with a doubling wait, for as long as some
// file still names the blob.
const (
	// fetchWorkers bounds concurrent fetches: the core serves at most
	// four blob streams per edge (sync.MaxBlobStreams).
	fetchWorkers = 4
	// fetchRetryMin and fetchRetryMax bound the wait between attempts.
	fetchRetryMin = 250 * time.Millisecond
	fetchRetryMax = 30 * time.Second
	// maxWantedNames bounds the names remembered for tasks whose file
	// metadata has not arrived; past it a session starts the fetch instead.
	maxWantedNames = 4096
)

// fetchState is the FileStore's fetching side. Its mutex is taken after
// FileStore.mu, never before.
type fetchState struct {
	fetcher BlobFetcher
	onReady func(deviceID string)

	mu      sync.Mutex
	queue   []fetchJob                 // waiting for a worker, oldest first
	active  map[string]bool            // sums queued or being fetched
	waiting map[string]map[string]bool // sum → devices whose session held a Download for it
	wanted  map[string]bool            // file names a task needs whose metadata has not arrived
	kick    chan struct{}

	fetched atomic.Int64 // blobs committed, for tests
}

type fetchJob struct {
	sum  string
	size int64
}

// SetFetcher lets the store fetch missing blobs with f, and registers the
// store with the cache so downlink tasks and sessions can start fetches.
// onReady (may be nil) is called, without blocking, for each device whose
// session held a Download until the blob was here. Call it once, before
// RunFetcher and before sessions start.
func (fs *FileStore) SetFetcher(f BlobFetcher, onReady func(deviceID string)) {
	fs.fetch.fetcher, fs.fetch.onReady = f, onReady
	fs.fetch.active = map[string]bool{}
	fs.fetch.waiting = map[string]map[string]bool{}
	fs.fetch.wanted = map[string]bool{}
	fs.fetch.kick = make(chan struct{}, 1)
	fs.c.files.Store(fs)
}

// RunFetcher fetches queued blobs until ctx ends and returns when its
// workers have stopped. It first resumes the fetches a restart cut short.
// Without a fetcher it returns at once.
func (fs *FileStore) RunFetcher(ctx context.Context) {
	if fs.fetch.fetcher == nil {
		return
	}
	fs.resumePartials()
	var wg sync.WaitGroup
	for range fetchWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fs.fetchWorker(ctx)
		}()
	}
	wg.Wait()
}

// resumePartials queues the fetches a restart cut short, for blobs a file
// still names, and drops the others.
func (fs *FileStore) resumePartials() {
	sums, err := fs.blobs.Partials()
	if err != nil {
		fs.c.log.Warn("file store: list partial fetches", "err", err)
		return
	}
	for _, sum := range sums {
		if m, ok := fs.fileOf(sum); ok {
			fs.enqueue(m)
			continue
		}
		if err := fs.blobs.RemovePartial(sum); err != nil {
			fs.c.log.Warn("file store: drop an unneeded partial fetch", "sha256", sum, "err", err)
		}
	}
}

// fileOf returns the metadata of a file that names sum.
func (fs *FileStore) fileOf(sum string) (fleet.FileMeta, bool) {
	files, err := fs.c.ListFiles()
	if err != nil {
		fs.c.log.Warn("file store: list files", "err", err)
		return fleet.FileMeta{}, true // keep trying: cannot tell
	}
	for _, f := range files {
		if f.SHA256 == sum {
			return f, true
		}
	}
	return fleet.FileMeta{}, false
}

// enqueue queues m's blob unless it is here or already on its way; it
// reports whether the blob is here.
func (fs *FileStore) enqueue(m fleet.FileMeta) bool {
	if fs.blobs.Has(m.SHA256) {
		return true
	}
	st := &fs.fetch
	st.mu.Lock()
	if !st.active[m.SHA256] {
		st.active[m.SHA256] = true
		st.queue = append(st.queue, fetchJob{sum: m.SHA256, size: m.Size})
	}
	st.mu.Unlock()
	select {
	case st.kick <- struct{}{}:
	default:
	}
	return false
}

// Want starts fetching the named file's blob if it is not here: a task
// will need it. A file whose metadata has not arrived is fetched when it
// does. It never blocks on the fetch.
func (fs *FileStore) Want(name string) {
	st := &fs.fetch
	if st.fetcher == nil {
		return
	}
	m, err := fs.c.FileMeta(name)
	if errors.Is(err, ErrNotFound) {
		st.mu.Lock()
		if len(st.wanted) < maxWantedNames {
			st.wanted[name] = true
		}
		st.mu.Unlock()
		return
	}
	if err != nil {
		fs.c.log.Warn("file store: read file metadata", "file", name, "err", err)
		return
	}
	fs.enqueue(m)
}

// downlinkFiles is called after a downlink batch committed: metas names
// the files whose metadata it stored, tasks the files its new download
// tasks need. It must not block (the sync client's goroutine runs it).
func (fs *FileStore) downlinkFiles(metas, tasks []string) {
	st := &fs.fetch
	var now []string
	st.mu.Lock()
	for _, name := range metas {
		if st.wanted[name] {
			delete(st.wanted, name)
			now = append(now, name)
		}
	}
	st.mu.Unlock()
	for _, name := range append(now, tasks...) {
		fs.Want(name)
	}
}

// awaitBlob reports whether a session may send a Download of m now: its
// blob is here, or there is no way to fetch it. If not, it starts the
// fetch and remembers the device, which is woken when the blob lands.
func (fs *FileStore) awaitBlob(m fleet.FileMeta, deviceID string) bool {
	st := &fs.fetch
	if st.fetcher == nil || fs.enqueue(m) {
		return true
	}
	st.mu.Lock()
	if st.waiting[m.SHA256] == nil {
		st.waiting[m.SHA256] = map[string]bool{}
	}
	st.waiting[m.SHA256][deviceID] = true
	st.mu.Unlock()
	// The fetch may have finished between enqueue and the line above.
	if fs.blobs.Has(m.SHA256) {
		fs.wakeWaiting(m.SHA256)
	}
	return false
}

// wakeWaiting calls onReady for the devices that wait for sum.
func (fs *FileStore) wakeWaiting(sum string) {
	st := &fs.fetch
	st.mu.Lock()
	devs := st.waiting[sum]
	delete(st.waiting, sum)
	st.mu.Unlock()
	if st.onReady == nil {
		return
	}
	for d := range devs {
		st.onReady(d)
	}
}

// nextJob waits for a queued fetch; false when ctx ended.
func (fs *FileStore) nextJob(ctx context.Context) (fetchJob, bool) {
	st := &fs.fetch
	for {
		st.mu.Lock()
		if len(st.queue) > 0 {
			j := st.queue[0]
			st.queue = st.queue[1:]
			more := len(st.queue) > 0
			st.mu.Unlock()
			if more {
				select { // pass the kick on to another worker
				case st.kick <- struct{}{}:
				default:
				}
			}
			return j, true
		}
		st.mu.Unlock()
		select {
		case <-ctx.Done():
			return fetchJob{}, false
		case <-st.kick:
		}
	}
}

func (fs *FileStore) fetchWorker(ctx context.Context) {
	for {
		j, ok := fs.nextJob(ctx)
		if !ok {
			return
		}
		fs.fetchUntilDone(ctx, j)
		st := &fs.fetch
		st.mu.Lock()
		delete(st.active, j.sum)
		st.mu.Unlock()
		if fs.blobs.Has(j.sum) {
			fs.wakeWaiting(j.sum)
		}
	}
}

// fetchUntilDone fetches one blob, retrying with a doubling wait, until it
// is here, no file names it any more, or ctx ends.
func (fs *FileStore) fetchUntilDone(ctx context.Context, j fetchJob) {
	wait := fetchRetryMin
	for attempt := 1; ctx.Err() == nil; attempt++ {
		if fs.blobs.Has(j.sum) {
			return
		}
		m, named := fs.fileOf(j.sum)
		if !named {
			// Deleted or replaced while it was coming: nothing needs it.
			if err := fs.blobs.RemovePartial(j.sum); err != nil {
				fs.c.log.Warn("file store: drop an unneeded partial fetch", "sha256", j.sum, "err", err)
			}
			fs.wakeWaiting(j.sum) // their sessions will find out
			return
		}
		if m.Size > 0 {
			j.size = m.Size
		}
		start := time.Now()
		n, err := fs.fetchOnce(ctx, j)
		if err == nil {
			fs.fetch.fetched.Add(1)
			fs.c.log.Info("file fetched from the core", "file", m.Name, "sha256", j.sum, "bytes", j.size,
				"lastAttemptBytes", n, "took", time.Since(start).Round(time.Millisecond))
			fs.dropIfUnnamed(j.sum)
			return
		}
		if ctx.Err() != nil {
			return
		}
		lvl := fs.c.log.Info
		if errors.Is(err, blob.ErrCorrupt) || errors.Is(err, blob.ErrTooLarge) {
			lvl = fs.c.log.Error // the core's bytes do not match its metadata
		}
		lvl("file fetch from the core failed; retrying", "file", m.Name, "sha256", j.sum, "attempt", attempt,
			"gotBytes", n, "retryIn", wait, "err", err)
		if n > 0 {
			wait = fetchRetryMin // it moved: the link is back
		}
		d := wait/2 + rand.N(wait/2+1)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		wait = min(wait*2, fetchRetryMax)
	}
}

// fetchOnce continues the blob's partial file from where it stops and
// commits it when it is whole; it returns the bytes this attempt got.
func (fs *FileStore) fetchOnce(ctx context.Context, j fetchJob) (int64, error) {
	p, err := fs.blobs.OpenPartial(j.sum, j.size)
	if err != nil {
		return 0, fmt.Errorf("fetch blob %s: %w", j.sum, err)
	}
	defer p.Close()
	var n int64
	if p.Offset() != j.size {
		n, err = fs.fetch.fetcher.FetchBlob(ctx, j.sum, p.Offset(), p)
		if err != nil {
			return n, fmt.Errorf("fetch blob %s: %w", j.sum, err)
		}
	}
	if err := p.Commit(); err != nil {
		return n, fmt.Errorf("fetch blob %s: %w", j.sum, err)
	}
	return n, nil
}

// dropIfUnnamed removes a fetched blob that no file names any more (its
// file was replaced or deleted while it came).
func (fs *FileStore) dropIfUnnamed(sum string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.dropBlobIfUnused(sum)
}

// Fetched reports how many blobs the store fetched from the core.
func (fs *FileStore) Fetched() int64 { return fs.fetch.fetched.Load() }
