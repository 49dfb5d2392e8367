package blob

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPutOpenRemove(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	content := []byte("firmware image v2")
	want := sha256.Sum256(content)
	sum, n, err := s.Put(bytes.NewReader(content), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if sum != hex.EncodeToString(want[:]) || n != int64(len(content)) {
		t.Fatalf("Put = %s, %d", sum, n)
	}
	// The same bytes again: same blob, no error.
	if again, _, err := s.Put(bytes.NewReader(content), 1<<20); err != nil || again != sum {
		t.Fatalf("second Put = %s, %v", again, err)
	}
	f, err := s.Open(sum)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, content) {
		t.Fatalf("Open read %q", got)
	}
	if err := s.Remove(sum); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(sum); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open after Remove = %v", err)
	}
	if err := s.Remove(sum); err != nil {
		t.Fatalf("second Remove = %v", err)
	}
}

func TestPutOverLimitStoresNothing(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir)
	if _, _, err := s.Put(strings.NewReader(strings.Repeat("x", 11)), 10); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Put over limit = %v", err)
	}
	if _, _, err := s.Put(strings.NewReader(strings.Repeat("x", 10)), 10); err != nil {
		t.Fatalf("Put at limit = %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("dir holds %d entries, want the one blob at the limit", len(entries))
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("client went away") }

func TestPutReadErrorLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir)
	if _, _, err := s.Put(io.MultiReader(strings.NewReader("part"), failingReader{}), 100); err == nil {
		t.Fatal("Put of a failing reader succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("dir holds %d entries after a failed Put", len(entries))
	}
}

func TestOpenCleansTempsAndChecksSums(t *testing.T) {
	dir := t.TempDir()
	leftover := filepath.Join(dir, "upload-123.tmp")
	if err := os.WriteFile(leftover, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("leftover temp file survived Open: %v", err)
	}
	for _, bad := range []string{"", "abc", "../etc/passwd", strings.Repeat("g", 64), strings.Repeat("A", 64)} {
		if _, err := s.Open(bad); !errors.Is(err, ErrBadSum) {
			t.Errorf("Open(%q) = %v, want ErrBadSum", bad, err)
		}
		if err := s.Remove(bad); !errors.Is(err, ErrBadSum) {
			t.Errorf("Remove(%q) = %v, want ErrBadSum", bad, err)
		}
	}
}
