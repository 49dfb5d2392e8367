package edge

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	"github.com/edgeacs/edgeacs/blob"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/httpapi"
)

// DefaultMaxFileSize bounds one uploaded file unless FileStore.MaxSize says otherwise.
const DefaultMaxFileSize int64 = 2 << 30

// ErrFileTooLarge means an upload exceeded FileStore.MaxSize (API → 413).
var ErrFileTooLarge = httpapi.Mark(errors.New("edge: file too large"), httpapi.ErrTooLarge)

// ErrBadFileName means a file name that cannot be stored or served (API → 400).
var ErrBadFileName = httpapi.Mark(errors.New("edge: bad file name"), httpapi.ErrBadRequest)

// FileStore keeps firmware and configuration files content-addressed on
// disk (<dir>/blobs/<sha256>, see package blob) with their metadata in the
// Cache, so a file crosses the backhaul once per POP and identical uploads
// share one blob.
type FileStore struct {
	dir   string
	c     *Cache
	blobs *blob.Store
	// MaxSize bounds one file; zero means DefaultMaxFileSize.
	MaxSize int64

	mu sync.Mutex // orders metadata changes against blob removal

	// fetch brings blobs from the core (fetch.go); idle until SetFetcher.
	fetch fetchState
}

// OpenFileStore opens (or creates) the store under dir, with metadata in c.
// Temporary files left by a crash mid-upload are removed.
func OpenFileStore(dir string, c *Cache) (*FileStore, error) {
	blobs, err := blob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		return nil, fmt.Errorf("open file store: %w", err)
	}
	return &FileStore{dir: dir, c: c, blobs: blobs}, nil
}

// Put streams r into the store as name, hashing it on the way: the body is
// never held in memory. meta supplies FileType, OUI, ProductClass and
// Version; Name, Size, SHA256 and Uploaded are filled in. A file of the
// same name is replaced. Over MaxSize is ErrFileTooLarge and stores nothing.
func (fs *FileStore) Put(name string, meta fleet.FileMeta, r io.Reader) (fleet.FileMeta, error) {
	if !fleet.ValidFileName(name) {
		return fleet.FileMeta{}, fmt.Errorf("put file %q: %w", name, ErrBadFileName)
	}
	max := fs.MaxSize
	if max <= 0 {
		max = DefaultMaxFileSize
	}
	sum, n, err := fs.blobs.Put(r, max)
	if errors.Is(err, blob.ErrTooLarge) {
		return fleet.FileMeta{}, fmt.Errorf("put file %s: %w (limit %d bytes)", name, ErrFileTooLarge, max)
	}
	if err != nil {
		return fleet.FileMeta{}, fmt.Errorf("put file %s: %w", name, err)
	}
	meta.Name, meta.Size, meta.SHA256, meta.Uploaded = name, n, sum, time.Now().UTC()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	old, err := fs.c.putFileMeta(meta)
	if err != nil {
		return fleet.FileMeta{}, fmt.Errorf("put file %s: %w", name, err)
	}
	if old != nil && old.SHA256 != meta.SHA256 {
		fs.dropBlobIfUnused(old.SHA256)
	}
	return meta, nil
}

// dropBlobIfUnused removes a blob no file name refers to any more. Called
// with fs.mu held.
func (fs *FileStore) dropBlobIfUnused(sum string) {
	files, err := fs.c.ListFiles()
	if err != nil {
		fs.c.log.Warn("file store: keep blob, cannot list files", "sha256", sum, "err", err)
		return
	}
	for _, f := range files {
		if f.SHA256 == sum {
			return
		}
	}
	if err := fs.blobs.Remove(sum); err != nil {
		fs.c.log.Warn("file store: remove blob", "sha256", sum, "err", err)
	}
}

// Open returns the file's content (seekable, for HTTP range requests) and
// metadata, or ErrNotFound. A file whose content is still coming from the
// core is ErrFileNotReady (and its fetch is started if none runs).
func (fs *FileStore) Open(name string) (io.ReadSeekCloser, fleet.FileMeta, error) {
	meta, err := fs.Stat(name)
	if err != nil {
		return nil, fleet.FileMeta{}, err
	}
	f, err := fs.blobs.Open(meta.SHA256)
	if errors.Is(err, blob.ErrNotFound) && fs.fetch.fetcher != nil {
		fs.enqueue(meta)
		return nil, fleet.FileMeta{}, fmt.Errorf("open file %s: blob %s: %w", name, meta.SHA256, ErrFileNotReady)
	}
	if errors.Is(err, blob.ErrNotFound) {
		return nil, fleet.FileMeta{}, fmt.Errorf("open file %s: blob %s missing: %w", name, meta.SHA256, ErrNotFound)
	}
	if err != nil {
		return nil, fleet.FileMeta{}, fmt.Errorf("open file %s: %w", name, err)
	}
	return f, meta, nil
}

// Stat returns a file's metadata, or ErrNotFound.
func (fs *FileStore) Stat(name string) (fleet.FileMeta, error) {
	if !fleet.ValidFileName(name) {
		return fleet.FileMeta{}, fmt.Errorf("file %q: %w", name, ErrNotFound)
	}
	return fs.c.FileMeta(name)
}

// List returns every file's metadata in name order.
func (fs *FileStore) List() ([]fleet.FileMeta, error) { return fs.c.ListFiles() }

// Delete removes a file, and its blob when no other name shares it.
func (fs *FileStore) Delete(name string) error {
	if !fleet.ValidFileName(name) {
		return fmt.Errorf("delete file %q: %w", name, ErrNotFound)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	meta, err := fs.c.deleteFileMeta(name)
	if err != nil {
		return err
	}
	fs.dropBlobIfUnused(meta.SHA256)
	return nil
}
