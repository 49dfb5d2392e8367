package fleet

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestProvisionJSONIsGenieACSShape(t *testing.T) {
	b, err := json.Marshal(&Provision{Name: "inform", Script: "declare('x', {value: 1});"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"_id":"inform","script":"declare('x', {value: 1});"}`; got != want {
		t.Fatalf("json = %s, want %s", got, want)
	}
}

func TestProvisionRecordRoundTrip(t *testing.T) {
	p := &Provision{Name: "p1", Script: "log('hi');"}
	b, err := Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if k, err := KindOf(b); err != nil || k != KindProvision {
		t.Fatalf("KindOf = %v, %v", k, err)
	}
	var got Provision
	if err := Unmarshal(b, &got); err != nil || got != *p {
		t.Fatalf("Unmarshal = %+v, %v", got, err)
	}
	var pr Preset
	if err := Unmarshal(b, &pr); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("provision read as a preset: %v", err)
	}
}

func TestProvisionValidate(t *testing.T) {
	for _, ok := range []Provision{
		{Name: "inform", Script: ""},
		{Name: "Prošivka 1.0", Script: strings.Repeat("x", MaxProvisionScript)},
		{Name: strings.Repeat("n", 256)},
	} {
		if err := ok.Validate(); err != nil {
			t.Errorf("Validate(%.20q) = %v", ok.Name, err)
		}
	}
	for _, bad := range []Provision{
		{Name: ""}, {Name: "."}, {Name: ".."}, {Name: "a/b"}, {Name: "a\x00b"}, {Name: "a\nb"},
		{Name: "\xff"}, {Name: strings.Repeat("n", 257)},
		{Name: "big", Script: strings.Repeat("x", MaxProvisionScript+1)},
	} {
		if err := bad.Validate(); !errors.Is(err, ErrBadRecord) {
			t.Errorf("Validate(%.20q, %d bytes) = %v, want ErrBadRecord", bad.Name, len(bad.Script), err)
		}
	}
}

func TestDownRecordValidateProvision(t *testing.T) {
	for _, ok := range []DownRecord{
		{Seq: 1, Shared: true, Kind: DownProvision, Provision: &Provision{Name: "p", Script: "1"}},
		{Seq: 2, Shared: true, Kind: DownProvisionDelete, Name: "p"},
	} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%s: %v", ok.Kind, err)
		}
	}
	for _, bad := range []DownRecord{
		{Seq: 1, Kind: DownProvision},
		{Seq: 1, Kind: DownProvision, Provision: &Provision{Name: "a/b"}},
		{Seq: 1, Kind: DownProvision, Provision: &Provision{Name: "p", Script: strings.Repeat("x", MaxProvisionScript+1)}},
		{Seq: 1, Kind: DownProvisionDelete},
		{Seq: 1, Kind: DownProvisionDelete, Name: ".."},
	} {
		if err := bad.Validate(); !errors.Is(err, ErrBadRecord) {
			t.Errorf("%s %+v: Validate = %v, want ErrBadRecord", bad.Kind, bad.Provision != nil, err)
		}
	}
	if DownProvision.String() != "provision" || DownProvisionDelete.String() != "provision-delete" {
		t.Errorf("names: %s, %s", DownProvision, DownProvisionDelete)
	}
}

// TestVirtualParameterRecord: GenieACS's shape in JSON, a record of its
// own kind, and names a path and a precondition can both spell.
func TestVirtualParameterRecord(t *testing.T) {
	v := &VirtualParameter{Name: "wan_ip", Script: "return {writable: false, value: ['1.2.3.4', 'xsd:string']};"}
	b, err := json.Marshal(v)
	if err != nil || !strings.HasPrefix(string(b), `{"_id":"wan_ip","script":`) {
		t.Fatalf("json = %s, %v", b, err)
	}
	rec, err := Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var got VirtualParameter
	if k, _ := KindOf(rec); k != KindVirtualParameter || Unmarshal(rec, &got) != nil || got != *v {
		t.Fatalf("round trip: %+v", got)
	}
	var p Provision
	if err := Unmarshal(rec, &p); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("read as a provision: %v", err)
	}
	for name, ok := range map[string]bool{"MAC": true, "wan_ip": true, "_x-1": true, "": false, "1a": false, "a.b": false,
		"a b": false, "a/b": false, "-a": false, strings.Repeat("a", 129): false} {
		if err := (&VirtualParameter{Name: name}).Validate(); (err == nil) != ok {
			t.Errorf("name %q: %v, want ok=%v", name, err, ok)
		}
	}
	big := &VirtualParameter{Name: "big", Script: strings.Repeat(" ", MaxProvisionScript+1)}
	if err := big.Validate(); !errors.Is(err, ErrBadRecord) {
		t.Errorf("oversized script: %v", err)
	}
}
