// Package blob is the content-addressed file store shared by edges and core
// nodes: firmware images and configuration files kept under the hex SHA-256
// of their bytes. A blob is streamed to a temp file while it is hashed,
// synced, and only then renamed into place, so a blob's name always matches
// its bytes, an upload is never held whole in memory, and a crash leaves at
// most a temp file that the next Open removes. Which names point at which
// blob is the caller's business (metadata lives in the edge cache or the
// core FSM).
package blob

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Sentinel errors callers branch on.
var (
	// ErrNotFound means no blob with that sum is stored here.
	ErrNotFound = errors.New("blob: not found")
	// ErrTooLarge means a Put read more than its limit; nothing was stored.
	ErrTooLarge = errors.New("blob: too large")
	// ErrBadSum means a string that is not 64 hex digits.
	ErrBadSum = errors.New("blob: bad sha256")
)

const tmpSuffix = ".tmp"

// Store keeps blobs in one directory.
type Store struct{ dir string }

// Open creates dir if needed and removes temp files a crash left behind.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open blob store %s: %w", dir, err)
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, "*"+tmpSuffix))
	for _, t := range tmps {
		_ = os.Remove(t)
	}
	return &Store{dir: dir}, nil
}

// Put streams r into the store, reading at most limit bytes, and returns
// the content's SHA-256 (hex) and size. More than limit fails with
// ErrTooLarge and stores nothing. Storing bytes already present is fine.
func (s *Store) Put(r io.Reader, limit int64) (sum string, size int64, err error) {
	f, err := os.CreateTemp(s.dir, "upload-*"+tmpSuffix)
	if err != nil {
		return "", 0, fmt.Errorf("blob temp file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, limit+1))
	if err == nil && n > limit {
		err = fmt.Errorf("%w: over %d bytes", ErrTooLarge, limit)
	}
	// The blob must be on disk before any metadata says it exists.
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, fmt.Errorf("store blob: %w", err)
	}
	sum = hex.EncodeToString(h.Sum(nil))
	if err := os.Rename(tmp, s.path(sum)); err != nil {
		return "", 0, fmt.Errorf("store blob %s: %w", sum, err)
	}
	return sum, n, nil
}

// Open returns the blob's content, seekable for HTTP range requests.
func (s *Store) Open(sum string) (*os.File, error) {
	if err := checkSum(sum); err != nil {
		return nil, err
	}
	f, err := os.Open(s.path(sum))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", sum, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", sum, err)
	}
	return f, nil
}

// Remove deletes a blob; removing one that is not there is not an error.
func (s *Store) Remove(sum string) error {
	if err := checkSum(sum); err != nil {
		return err
	}
	if err := os.Remove(s.path(sum)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove blob %s: %w", sum, err)
	}
	return nil
}

func (s *Store) path(sum string) string { return filepath.Join(s.dir, sum) }

func checkSum(sum string) error {
	if len(sum) != 2*sha256.Size || strings.ToLower(sum) != sum {
		return fmt.Errorf("%w: %q", ErrBadSum, sum)
	}
	if _, err := hex.DecodeString(sum); err != nil {
		return fmt.Errorf("%w: %q", ErrBadSum, sum)
	}
	return nil
}
