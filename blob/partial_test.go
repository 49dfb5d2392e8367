package blob

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"
)

func sumOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func TestPartialResumesAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	content := bytes.Repeat([]byte("0123456789"), 1000)
	sum := sumOf(content)
	p, err := s.OpenPartial(sum, int64(len(content)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write(content[:4000]); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// A restart: Open keeps partials, and the fetch continues where it stopped.
	if s, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	if ps, _ := s.Partials(); len(ps) != 1 || ps[0] != sum {
		t.Fatalf("Partials = %v", ps)
	}
	if s.Has(sum) {
		t.Fatal("a partial blob counts as stored")
	}
	p, err = s.OpenPartial(sum, int64(len(content)))
	if err != nil {
		t.Fatal(err)
	}
	if p.Offset() != 4000 {
		t.Fatalf("resume offset %d, want 4000", p.Offset())
	}
	if _, err := p.Write(content[4000:]); err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	if !s.Has(sum) {
		t.Fatal("committed blob missing")
	}
	f, err := s.Open(sum)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, content) {
		t.Fatal("content differs")
	}
	if ps, _ := s.Partials(); len(ps) != 0 {
		t.Fatalf("partials left after commit: %v", ps)
	}
}

func TestPartialRefusesWrongBytes(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	content := []byte("the real firmware")
	sum := sumOf(content)
	p, err := s.OpenPartial(sum, int64(len(content)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write([]byte("the fake firmware")); err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Commit of wrong bytes = %v, want ErrCorrupt", err)
	}
	if s.Has(sum) {
		t.Fatal("corrupt bytes were stored")
	}
	// The corrupt partial is gone: the next attempt starts at zero.
	p, err = s.OpenPartial(sum, int64(len(content)))
	if err != nil {
		t.Fatal(err)
	}
	if p.Offset() != 0 {
		t.Fatalf("offset after a corrupt commit = %d", p.Offset())
	}
	if _, err := p.Write(append(content, '!')); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("write past the size = %v, want ErrTooLarge", err)
	}
	if _, err := p.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.RemovePartial(sum); err != nil {
		t.Fatalf("RemovePartial of none: %v", err)
	}
}
