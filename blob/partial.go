package blob

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ErrCorrupt means fetched bytes do not hash to the sum they were fetched
// under (or do not have the announced size); the partial file is
// discarded, so the next fetch starts over.
var ErrCorrupt = errors.New("blob: content does not match its sha256")

// partSuffix names a blob being fetched from elsewhere. Open keeps these
// (unlike temp files) so a fetch cut short resumes after a restart too;
// a name with the suffix is never a valid sum, so it is never served.
const partSuffix = ".part"

// Has reports whether the blob is stored here.
func (s *Store) Has(sum string) bool {
	if checkSum(sum) != nil {
		return false
	}
	fi, err := os.Stat(s.path(sum))
	return err == nil && fi.Mode().IsRegular()
}

// Partial is a blob being fetched from another node, kept as
// <dir>/<sum>.part so that a fetch cut short continues at Offset instead
// of starting over. It hashes what it holds, so Commit can refuse bytes
// that are not the blob (a lying peer, a torn write after a power cut)
// before anything can serve them. Not safe for concurrent use: a caller
// fetches a given sum once at a time.
type Partial struct {
	s    *Store
	sum  string
	size int64 // expected size; < 0 when unknown
	f    *os.File
	h    hash.Hash
	n    int64
	done bool
}

// OpenPartial opens, or starts, the partial file of sum, expected to hold
// size bytes (size < 0: not known). The bytes already there are hashed so
// the fetch can continue at Offset; a partial longer than size cannot be
// the blob's prefix and is started over.
func (s *Store) OpenPartial(sum string, size int64) (*Partial, error) {
	if err := checkSum(sum); err != nil {
		return nil, err
	}
	path := s.path(sum) + partSuffix
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open partial blob %s: %w", sum, err)
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err == nil && size >= 0 && n > size {
		// Longer than the blob: not a prefix of it. Start over.
		h.Reset()
		n = 0
		if err = f.Truncate(0); err == nil {
			_, err = f.Seek(0, io.SeekStart)
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("resume partial blob %s: %w", sum, err)
	}
	return &Partial{s: s, sum: sum, size: size, f: f, h: h, n: n}, nil
}

// Offset is how many bytes the partial holds: where the fetch continues.
func (p *Partial) Offset() int64 { return p.n }

// Write appends b. Bytes past the expected size are refused with
// ErrTooLarge and nothing of b is written.
func (p *Partial) Write(b []byte) (int, error) {
	if p.done {
		return 0, fmt.Errorf("write partial blob %s: %w", p.sum, os.ErrClosed)
	}
	if p.size >= 0 && p.n+int64(len(b)) > p.size {
		return 0, fmt.Errorf("%w: partial blob %s past its %d bytes", ErrTooLarge, p.sum, p.size)
	}
	k, err := p.f.Write(b)
	p.h.Write(b[:k])
	p.n += int64(k)
	if err != nil {
		return k, fmt.Errorf("write partial blob %s: %w", p.sum, err)
	}
	return k, nil
}

// Commit verifies the size and the SHA-256 and moves the blob into place.
// Bytes that are not the blob are discarded (ErrCorrupt), so the next
// attempt starts from zero. The partial is closed either way.
func (p *Partial) Commit() error {
	if p.done {
		return fmt.Errorf("commit partial blob %s: %w", p.sum, os.ErrClosed)
	}
	p.done = true
	part := p.s.path(p.sum) + partSuffix
	got := hex.EncodeToString(p.h.Sum(nil))
	if (p.size >= 0 && p.n != p.size) || got != p.sum {
		p.f.Close()
		_ = os.Remove(part)
		return fmt.Errorf("%w: %s: got %d bytes hashing to %s (want %d bytes)", ErrCorrupt, p.sum, p.n, got, p.size)
	}
	// The blob must be on disk before anything serves or names it.
	err := p.f.Sync()
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(part, p.s.path(p.sum))
	}
	if err != nil {
		return fmt.Errorf("commit blob %s: %w", p.sum, err)
	}
	return nil
}

// Close keeps the bytes fetched so far for a later resume. It is a no-op
// after Commit or a previous Close.
func (p *Partial) Close() error {
	if p.done {
		return nil
	}
	p.done = true
	if err := p.f.Close(); err != nil {
		return fmt.Errorf("close partial blob %s: %w", p.sum, err)
	}
	return nil
}

// Partials lists the sums of the blobs whose fetch was cut short.
func (s *Store) Partials() ([]string, error) {
	paths, err := filepath.Glob(filepath.Join(s.dir, "*"+partSuffix))
	if err != nil {
		return nil, fmt.Errorf("list partial blobs: %w", err)
	}
	var out []string
	for _, p := range paths {
		sum := strings.TrimSuffix(filepath.Base(p), partSuffix)
		if checkSum(sum) == nil {
			out = append(out, sum)
		}
	}
	return out, nil
}

// RemovePartial drops a partial fetch no one needs any more; removing one
// that is not there is not an error.
func (s *Store) RemovePartial(sum string) error {
	if err := checkSum(sum); err != nil {
		return err
	}
	if err := os.Remove(s.path(sum) + partSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove partial blob %s: %w", sum, err)
	}
	return nil
}
