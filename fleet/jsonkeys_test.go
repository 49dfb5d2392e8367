package fleet

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRejectDuplicateKeys(t *testing.T) {
	tests := []struct {
		in, dup string // dup: the key the error must name ("" = accepted)
	}{
		{`{"name": "reboot"}`, ""},
		{`{"name": "reboot", "name": "factoryReset"}`, `"name"`},
		{`{"task": {"name": "a", "x": [1, {"y": 1, "y": 2}]}}`, `"task.x[].y"`},
		{`{"filter": {"edge": "e1"}, "task": {"name": "reboot", "name": "x"}}`, `"task.name"`},
		{`{"a": {"b": 1}, "c": {"b": 2}}`, ""}, // same key in sibling objects
		{`[{"a": 1}, {"a": 2}]`, ""},
		{`{"a": [], "b": {}, "c": null}`, ""},
		{`"scalar"`, ""},
		{`{"name": `, ""}, // malformed: left to the decoder
		{``, ""},
	}
	for _, tt := range tests {
		err := RejectDuplicateKeys([]byte(tt.in))
		switch {
		case tt.dup == "" && err != nil:
			t.Errorf("%s: %v, want accepted", tt.in, err)
		case tt.dup != "" && (!errors.Is(err, ErrDuplicateKey) || !strings.Contains(err.Error(), tt.dup)):
			t.Errorf("%s: %v, want ErrDuplicateKey naming %s", tt.in, err, tt.dup)
		}
	}
	// The case: the last "name" must not silently win.
	_, err := ParseTask([]byte(`{"name": "reboot", "name": "factoryReset"}`), "dev1", time.Now())
	if !errors.Is(err, ErrBadTask) || !errors.Is(err, ErrDuplicateKey) || !strings.Contains(err.Error(), `"name"`) {
		t.Fatalf("ParseTask with a duplicate name: %v", err)
	}
}
