package core

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/provision"
	"github.com/edgeacs/edgeacs/provision/expr"
	"github.com/edgeacs/edgeacs/provision/preset"
	"github.com/edgeacs/edgeacs/provision/script"
)

// maxNameLen bounds device IDs, tags, preset, provision and file names.
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

// ValidatePreset checks a preset as PUT /api/v1/presets/{name} receives
// it: the core's rule for names, then what every edge will do with it
// (preset.Compile: the precondition parses, the schedule parses, the
// provisions are well formed, channel and events are sane), and the
// arguments of built-in provisions whose arguments are all literals
// (a refresh path that does not parse, a value without one). A mistake
// is a 400 here rather than a fault at every device's next inform. The
// error wraps ErrBadRequest and, for a precondition, an *expr.Error with
// its line and column (presetErrorBody puts them in the answer).
func ValidatePreset(p *fleet.Preset) error {
	if err := checkName("preset name", p.Name); err != nil {
		return err
	}
	if p.Provisions == nil {
		return fmt.Errorf("%w: preset %s: provisions must be an array of arrays", ErrBadRequest, p.Name)
	}
	if err := preset.Validate(p); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return nil
}

// checkStoredPreset is the check the state machine applies to OpPutPreset.
// It must never refuse what an earlier version's API accepted, since a
// replayed log applies the same commands on a newer binary; so it checks
// only the shape every version has required: a name, and provisions that
// are non-empty arrays starting with a string name, whose arguments are
// JSON scalars or arrays of them (expressions in GenieACS's array form).
// ValidatePreset, at the API, is the strict check.
func checkStoredPreset(p *fleet.Preset) error {
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
			if !jsonArgument(a, 0) {
				return fmt.Errorf("%w: preset %s: provision %d argument %d must be a string, number, boolean, null or an expression array", ErrBadRequest, p.Name, i, j+1)
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

// jsonArgument reports whether a is a scalar or a (bounded) array of
// them, as a provision argument may be.
func jsonArgument(a any, depth int) bool {
	switch v := a.(type) {
	case nil, string, bool, float64, float32, int, int64, uint64:
		return true
	case []any:
		if depth >= expr.MaxDepth {
			return false
		}
		for _, x := range v {
			if !jsonArgument(x, depth+1) {
				return false
			}
		}
		return true
	}
	return false
}

// presetErrorBody is the 400 answer to a preset PUT that ValidatePreset
// refused: the message, and where the error is (the field, and for a
// precondition its line and column), so a tool can point at it.
func presetErrorBody(err error) map[string]any {
	body := preset.ErrorFields(err)
	body["error"] = err.Error()
	return body
}

// ValidateProvision checks a provision script as PUT
// /api/v1/provisions/{name} receives it: the name and size bounds every
// edge relies on, a name that is not a built-in provision's (a preset
// naming it would run the built-in), then that the script compiles, as
// every edge will compile it. A syntax error is a 400 here, with its
// line and column (a *script.CompileError, which provisionErrorBody puts
// in the answer), rather than a fault at every device that runs it.
func ValidateProvision(p *fleet.Provision) error {
	if err := checkStoredProvision(p); err != nil {
		return err
	}
	if err := provision.CheckScriptName(p.Name); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if _, err := script.Compile(p.Name, p.Script); err != nil {
		return fmt.Errorf("%w: provision %s: %w", ErrBadRequest, p.Name, err)
	}
	return nil
}

// checkStoredProvision is the check the state machine applies to
// OpPutProvision: only the bounds (fleet.Provision.Validate), never the
// compiler, whose verdict may change between versions while a replayed
// log must apply the same way on every binary.
func checkStoredProvision(p *fleet.Provision) error {
	if err := checkName("provision name", p.Name); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return nil
}

// provisionErrorBody is the 400 answer to a provision PUT that
// ValidateProvision refused: the message and, for a syntax error, its
// line and column, so a tool can point at it.
func provisionErrorBody(err error) map[string]any {
	body := map[string]any{"error": err.Error()}
	var ce *script.CompileError
	if errors.As(err, &ce) {
		body["line"], body["column"] = ce.Line, ce.Column
	}
	return body
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
