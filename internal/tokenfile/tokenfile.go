// Package tokenfile writes the bootstrap admin token's secret to a file
// (<data>/admin.token on a founding core node or a standalone edge) so
// that an operator can read it once, and never loses it to a crash.
//
// The secret is staged first, in path+".tmp" (mode 0600, synced), and
// only then proposed or stored; once the store holds it, Commit renames
// the staged file into place. A crash between the two leaves the staged
// file behind, and the next start reads it back (Pending) instead of
// making a new secret, so a token that did get stored is never orphaned.
package tokenfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/edgeacs/edgeacs/fleet"
)

// Name is the file's name in a node's data directory.
const Name = "admin.token"

func staged(path string) string { return path + ".tmp" }

// Exists reports whether path exists (an error other than "does not
// exist" counts as existing: never overwrite what cannot be checked).
func Exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// Pending returns the secret an earlier attempt staged, if any.
func Pending(path string) (string, bool) {
	b, err := os.ReadFile(staged(path))
	if err != nil {
		return "", false
	}
	s := strings.TrimSpace(string(b))
	if !strings.HasPrefix(s, fleet.TokenPrefix) || len(s) > fleet.MaxTokenSecret {
		return "", false
	}
	return s, true
}

// Stage makes a fresh secret and writes it, newline-terminated, to the
// staging file (mode 0600, synced), replacing any staged before.
func Stage(path string) (string, error) {
	secret, err := fleet.NewTokenSecret()
	if err != nil {
		return "", err
	}
	if err := stage(path, []byte(secret+"\n")); err != nil {
		return "", fmt.Errorf("stage admin token: %w", err)
	}
	return secret, nil
}

// stage writes data to path's staging file (mode 0600, synced), replacing
// any staged before. A failed write leaves no staging file.
func stage(path string, data []byte) error {
	tmp := staged(path)
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return CreateNew(tmp, data, 0o600)
}

// CreateNew creates path with perm, failing if it exists (the error then
// wraps fs.ErrExist), writes data and syncs it. A failed write removes
// the file it created: what is left is all of data or nothing.
func CreateNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Write replaces path with data, mode 0600, the same way as a token: staged
// in path+".tmp", synced, then renamed into place, so a reader (or a
// crash) sees the old file or the new one, never half of one. It is for
// other small secrets beside the token, such as the CLI configuration
// `edgeacs dev` writes.
func Write(path string, data []byte) error {
	if err := stage(path, data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(staged(path), path); err != nil {
		_ = os.Remove(staged(path))
		return fmt.Errorf("write %s: %w", path, err)
	}
	SyncDir(path)
	return nil
}

// Commit moves the staged secret to path, atomically, and syncs the
// directory so the new name survives a power loss.
func Commit(path string) error {
	if err := os.Rename(staged(path), path); err != nil {
		return fmt.Errorf("write admin token: %w", err)
	}
	SyncDir(path)
	return nil
}

// SyncDir syncs path's directory so a new name in it (a rename, a file
// created) survives a power loss (best effort: not every platform can
// sync a directory).
func SyncDir(path string) {
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// Discard removes the staged secret: the store holds another token.
func Discard(path string) {
	_ = os.Remove(staged(path))
}
