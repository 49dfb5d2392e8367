package tokenfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeacs/edgeacs/fleet"
)

func TestStageCommitDiscard(t *testing.T) {
	path := filepath.Join(t.TempDir(), Name)
	if Exists(path) {
		t.Fatal("Exists before anything was written")
	}
	if _, ok := Pending(path); ok {
		t.Fatal("Pending before anything was staged")
	}
	secret, err := Stage(path)
	if err != nil || !strings.HasPrefix(secret, fleet.TokenPrefix) {
		t.Fatalf("Stage: %q %v", secret, err)
	}
	if got, ok := Pending(path); !ok || got != secret {
		t.Fatalf("Pending = %q %v, want the staged secret", got, ok)
	}
	if Exists(path) {
		t.Fatal("a staged secret is not the file yet")
	}
	if err := Commit(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	st, _ := os.Stat(path)
	if err != nil || string(b) != secret+"\n" || st.Mode().Perm() != 0o600 {
		t.Fatalf("file: %q mode %v %v", b, st.Mode(), err)
	}
	if _, ok := Pending(path); ok {
		t.Fatal("staged file left after Commit")
	}

	// A second stage replaces the first; Discard removes it.
	other := filepath.Join(t.TempDir(), Name)
	s1, _ := Stage(other)
	s2, _ := Stage(other)
	if got, _ := Pending(other); got != s2 || s1 == s2 {
		t.Fatalf("Pending after two stages = %q", got)
	}
	Discard(other)
	if _, ok := Pending(other); ok || Exists(other) {
		t.Fatal("Discard left something")
	}
	// Garbage in the staging file is not a secret.
	os.WriteFile(other+".tmp", []byte("not a token\n"), 0o600)
	if _, ok := Pending(other); ok {
		t.Fatal("Pending accepted garbage")
	}
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cli.yaml")
	// A stale staging file and an old, too open file are both replaced.
	os.WriteFile(path+".tmp", []byte("stale"), 0o644)
	os.WriteFile(path, []byte("old"), 0o644)
	for _, want := range []string{"first\n", "second\n"} {
		if err := Write(path, []byte(want)); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		st, _ := os.Stat(path)
		if err != nil || string(b) != want || st.Mode().Perm() != 0o600 {
			t.Fatalf("after Write(%q): %q mode %v %v", want, b, st.Mode(), err)
		}
		if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
			t.Fatalf("staging file left behind: %v", err)
		}
	}
	// A directory that does not exist is an error naming the file.
	if err := Write(filepath.Join(dir, "nope", "cli.yaml"), []byte("x")); err == nil || !strings.Contains(err.Error(), "cli.yaml") {
		t.Fatalf("Write into a missing directory: %v", err)
	}
}
