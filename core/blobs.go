package core

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// BlobStore keeps file contents by SHA256 under one directory. Writes go
// to a temp file that is renamed into place once hashed, so a blob's name
// always matches its bytes and a crash leaves only temp files behind.
type BlobStore struct{ dir string }

// OpenBlobStore creates dir if needed and removes leftover temp files.
func OpenBlobStore(dir string) (*BlobStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create blob dir: %w", err)
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, "*.tmp"))
	for _, t := range tmps {
		_ = os.Remove(t)
	}
	return &BlobStore{dir: dir}, nil
}

// Put streams r into the store, at most limit bytes, and returns the
// content's SHA256 (hex) and size. Reading more than limit fails with
// ErrTooLarge and stores nothing.
func (b *BlobStore) Put(r io.Reader, limit int64) (string, int64, error) {
	f, err := os.CreateTemp(b.dir, "upload-*.tmp")
	if err != nil {
		return "", 0, fmt.Errorf("blob temp file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, limit+1))
	if err == nil && n > limit {
		err = fmt.Errorf("%w: file over %d bytes", ErrTooLarge, limit)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, fmt.Errorf("store blob: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := os.Rename(tmp, b.path(sum)); err != nil {
		return "", 0, fmt.Errorf("store blob %s: %w", sum, err)
	}
	return sum, n, nil
}

// Open returns the blob's content, ErrNotFound if this node lacks it.
func (b *BlobStore) Open(sum string) (*os.File, error) {
	if raw, err := hex.DecodeString(sum); err != nil || len(raw) != sha256.Size {
		return nil, fmt.Errorf("%w: bad sha256 %q", ErrBadRequest, sum)
	}
	f, err := os.Open(b.path(sum))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("blob %s is not stored on this node: %w", sum, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", sum, err)
	}
	return f, nil
}

func (b *BlobStore) path(sum string) string { return filepath.Join(b.dir, sum) }
