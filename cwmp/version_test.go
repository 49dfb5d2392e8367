package cwmp

import (
	"errors"
	"testing"
)

func TestNegotiateVersion(t *testing.T) {
	all := []string(nil)
	tests := []struct {
		name      string
		env       Envelope
		supported []string
		version   string
		use       string
		fault     bool
	}{
		{name: "1.0", env: Envelope{Namespace: NS10}, version: "1.0"},
		{name: "1.1", env: Envelope{Namespace: NS11}, version: "1.1"},
		{name: "1.2", env: Envelope{Namespace: NS12}, version: "1.2"},
		{name: "1.2 with SessionTimeout is 1.3", env: Envelope{Namespace: NS12, SessionTimeout: 60}, version: "1.3"},
		{name: "unofficial 1-3", env: Envelope{Namespace: NS13}, version: "1.3"},
		{name: "unofficial 1-4", env: Envelope{Namespace: NS14}, version: "1.4"},
		{name: "lenient case and space", env: Envelope{Namespace: " URN:DSLFORUM-ORG:CWMP-1-1 "}, version: "1.1"},
		{name: "no namespace reads as 1.0", env: Envelope{}, version: "1.0"},
		{name: "future namespace capped at ACS max", env: Envelope{Namespace: "urn:dslforum-org:cwmp-1-9"}, version: "1.4"},
		{name: "newer CPE than ACS", env: Envelope{Namespace: NS12}, supported: []string{"1.0", "1.1"}, version: "1.1"},
		{name: "gap in ACS list", env: Envelope{Namespace: NS11}, supported: []string{"1.0", "1.2"}, version: "1.0"},
		{name: "older CPE than ACS", env: Envelope{Namespace: NS10}, supported: []string{"1.2", "1.4"}, fault: true},
		{name: "foreign namespace", env: Envelope{Namespace: "urn:example:other"}, fault: true},
		{name: "bad minor", env: Envelope{Namespace: "urn:dslforum-org:cwmp-1-x"}, fault: true},
		{name: "major 2", env: Envelope{Namespace: "urn:dslforum-org:cwmp-2-0"}, fault: true},
		{
			name:    "1.4 header picks highest common",
			env:     Envelope{Namespace: NS12, SupportedCWMPVersions: "1.0,1.1,1.2,1.3,1.4"},
			version: "1.4", use: "1.4",
		},
		{
			name:      "1.4 header limited by ACS",
			env:       Envelope{Namespace: NS12, SupportedCWMPVersions: "1.0, 1.2 ,1.4"},
			supported: []string{"1.0", "1.1", "1.3"},
			version:   "1.0", use: "1.0",
		},
		{
			name:    "header unordered with junk",
			env:     Envelope{Namespace: NS12, SupportedCWMPVersions: "1.3,junk,,1.1"},
			version: "1.3", use: "1.3",
		},
		{
			name:      "header overrides namespace",
			env:       Envelope{Namespace: NS10, SupportedCWMPVersions: "1.2"},
			supported: all,
			version:   "1.2", use: "1.2",
		},
		{
			name:      "no common version",
			env:       Envelope{Namespace: NS12, SupportedCWMPVersions: "1.4"},
			supported: []string{"1.0", "1.1"},
			fault:     true,
		},
		{name: "ACS list invalid", env: Envelope{Namespace: NS10}, supported: []string{"x"}, fault: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tt.env
			v, use, err := NegotiateVersion(&env, tt.supported)
			if tt.fault {
				if !errors.Is(err, ErrVersionIncompatible) {
					t.Fatalf("err = %v, want ErrVersionIncompatible", err)
				}
				var f *Fault
				if !errors.As(err, &f) || f.Code != FaultACSVersionIncompatible {
					t.Fatalf("err = %v, want a *Fault 8006 inside", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if v != tt.version || use != tt.use {
				t.Fatalf("got (%q, %q), want (%q, %q)", v, use, tt.version, tt.use)
			}
		})
	}
}

func TestNegotiateVersionNil(t *testing.T) {
	if _, _, err := NegotiateVersion(nil, nil); err == nil {
		t.Fatal("nil envelope accepted")
	}
}

func TestNamespaceForVersion(t *testing.T) {
	for v, want := range map[string]string{"1.0": NS10, "1.1": NS11, "1.2": NS12, "1.3": NS12, "1.4": NS12, "2.0": ""} {
		if got := NamespaceForVersion(v); got != want {
			t.Errorf("NamespaceForVersion(%q) = %q, want %q", v, got, want)
		}
	}
}
