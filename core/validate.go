package core

import (
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/edgeacs/edgeacs/fleet"
)

// maxNameLen bounds device IDs, tags, preset and file names.
const maxNameLen = 256

// checkName rejects names that would break key encoding or URLs: empty,
// overlong, not UTF-8, "." or ".." (a path segment that URL cleaning
// resolves, so the name could not be addressed in /api/v1/.../{name}, and
// which means a directory wherever a name becomes a file), or holding
// control characters or a slash.
func checkName(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty %s", ErrBadRequest, what)
	case s == "." || s == "..":
		return fmt.Errorf("%w: %s %q is a path segment, not a name", ErrBadRequest, what, s)
	case len(s) > maxNameLen:
		return fmt.Errorf("%w: %s longer than %d bytes", ErrBadRequest, what, maxNameLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s is not UTF-8", ErrBadRequest, what)
	case strings.ContainsAny(s, "/"):
		return fmt.Errorf("%w: %s %q contains '/'", ErrBadRequest, what, s)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %s %q contains a control character", ErrBadRequest, what, s)
		}
	}
	return nil
}

// ValidatePreset checks a preset in GenieACS's shape: a name, and provisions
// that are arrays whose first element is the provision's name. Arguments are
// limited to scalars (string, number, boolean, null), which is all GenieACS's
// built-in provisions take.
func ValidatePreset(p *fleet.Preset) error {
	if err := checkName("preset name", p.Name); err != nil {
		return err
	}
	if p.Provisions == nil {
		return fmt.Errorf("%w: preset %s: provisions must be an array of arrays", ErrBadRequest, p.Name)
	}
	for i, pr := range p.Provisions {
		if len(pr) == 0 {
			return fmt.Errorf("%w: preset %s: provision %d is empty", ErrBadRequest, p.Name, i)
		}
		if s, ok := pr[0].(string); !ok || s == "" {
			return fmt.Errorf("%w: preset %s: provision %d must start with its name (a string)", ErrBadRequest, p.Name, i)
		}
		for j, a := range pr[1:] {
			switch a.(type) {
			case nil, string, bool, float64, float32, int, int64, uint64:
			default:
				return fmt.Errorf("%w: preset %s: provision %d argument %d must be a string, number, boolean or null", ErrBadRequest, p.Name, i, j+1)
			}
		}
	}
	for ev := range p.Events {
		if ev == "" {
			return fmt.Errorf("%w: preset %s: empty event name", ErrBadRequest, p.Name)
		}
	}
	return nil
}

// checkFileName applies the fleet's one rule for file names, which edges
// share, so no file the core accepts is one an edge cannot store or serve.
func checkFileName(name string) error {
	if !fleet.ValidFileName(name) {
		return fmt.Errorf("%w: bad file name %q (1–255 bytes of UTF-8; no '/', '\\', control characters, '.' or '..')", ErrBadRequest, name)
	}
	return nil
}

// ValidateFileMeta checks file metadata before it is replicated.
func ValidateFileMeta(f *fleet.FileMeta) error {
	if err := checkFileName(f.Name); err != nil {
		return err
	}
	if b, err := hex.DecodeString(f.SHA256); err != nil || len(b) != 32 {
		return fmt.Errorf("%w: file %s: sha256 must be 64 hex digits", ErrBadRequest, f.Name)
	}
	if f.Size < 0 {
		return fmt.Errorf("%w: file %s: negative size", ErrBadRequest, f.Name)
	}
	return nil
}
