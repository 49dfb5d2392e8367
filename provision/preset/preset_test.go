package preset

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/provision/expr"
)

// A preset as GenieACS's API returns it (GET /presets), less the legacy
// "configurations" field.
const genieJSON = `{
	"_id": "inform",
	"weight": 10,
	"channel": "",
	"events": {"0 BOOTSTRAP": true, "1 BOOT": false},
	"precondition": "InternetGatewayDevice.DeviceInfo.SoftwareVersion <> \"1.2.3\" AND Tags.beta IS NULL",
	"schedule": "3600 0 2 * * *",
	"provisions": [
		["refresh", "InternetGatewayDevice.DeviceInfo.", 3600],
		["value", "InternetGatewayDevice.ManagementServer.PeriodicInformInterval", 300],
		["tag", "configured", true],
		["reboot"],
		["my-script", null, 1.5, ["FUNC", "NOW"]]
	]
}`

func TestCompileGenieACSPreset(t *testing.T) {
	var p fleet.Preset
	if err := json.Unmarshal([]byte(genieJSON), &p); err != nil {
		t.Fatal(err)
	}
	c, err := Compile(&p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "inform" || c.Weight != 10 || c.Channel != DefaultChannel {
		t.Fatalf("%+v", c)
	}
	if len(c.Events) != 2 || !c.Events["0_BOOTSTRAP"] || c.Events["1_BOOT"] {
		t.Fatalf("events %v", c.Events)
	}
	if got := c.Precondition.String(); got != `InternetGatewayDevice.DeviceInfo.SoftwareVersion <> "1.2.3" AND Tags.beta IS NULL` {
		t.Fatal(got)
	}
	if c.Schedule == nil || c.Schedule.Duration != time.Hour {
		t.Fatal(c.Schedule)
	}
	if len(c.Provisions) != 5 || c.Provisions[3].Name != "reboot" || len(c.Provisions[3].Args) != 0 {
		t.Fatalf("%+v", c.Provisions)
	}
	now := time.Date(2024, 6, 1, 2, 0, 0, 0, time.UTC)
	vals := c.Provisions[4].Values(expr.Env{Now: now})
	if !vals[0].IsNull() || !vals[1].Equal(expr.NumberValue(1.5)) || !vals[2].Equal(expr.TimeValue(now)) {
		t.Fatalf("%v", vals)
	}
	if v := c.Provisions[0].Values(expr.Env{}); v[0].Any() != "InternetGatewayDevice.DeviceInfo." || v[1].Any() != 3600.0 {
		t.Fatalf("%v", v)
	}
	// A string argument is a string, never an expression.
	p2 := fleet.Preset{Name: "s", Provisions: [][]any{{"value", "a = 1 AND", "NOW()"}}}
	if c, err := Compile(&p2); err != nil || c.Provisions[0].Args[1].String() != `"NOW()"` {
		t.Fatal(c, err)
	}
}

func TestCompileEmpty(t *testing.T) {
	c, err := Compile(&fleet.Preset{Name: "x", Precondition: "  ", Schedule: " "})
	if err != nil {
		t.Fatal(err)
	}
	if c.Precondition != nil || c.Schedule != nil || len(c.Provisions) != 0 || c.Channel != "default" {
		t.Fatalf("%+v", c)
	}
	c, err = Compile(&fleet.Preset{Name: "x", Channel: "wifi", Events: map[string]bool{"M Reboot": true}})
	if err != nil || c.Channel != "wifi" || !c.Events["M_Reboot"] {
		t.Fatal(c, err)
	}
}

func TestCompileErrors(t *testing.T) {
	long := strings.Repeat("x", MaxNameLen+1)
	manyEvents := map[string]bool{}
	for i := range MaxEvents + 1 {
		manyEvents[strings.Repeat("e", i+1)] = true
	}
	manyArgs := []any{"p"}
	for range MaxArgs + 1 {
		manyArgs = append(manyArgs, 1.0)
	}
	manyProvisions := make([][]any, MaxProvisions+1)
	for i := range manyProvisions {
		manyProvisions[i] = []any{"reboot"}
	}
	for _, tc := range []struct {
		p            fleet.Preset
		field, msg   string
		line, column int // of an *expr.Error, when set
	}{
		{p: fleet.Preset{Precondition: "a = "}, field: "precondition", msg: "unexpected end of expression", line: 1, column: 5},
		{p: fleet.Preset{Precondition: "a = 1 AND\n  b != 2"}, field: "precondition", msg: "not equal is written <>", line: 2, column: 5},
		{p: fleet.Preset{Precondition: "  x*2 = 4"}, field: "precondition", msg: "whole path segment", line: 1, column: 4},
		{p: fleet.Preset{Precondition: `{"a": `}, field: "precondition", msg: "not valid JSON"},
		{p: fleet.Preset{Precondition: `{"a": {"$regex": "x"}}`}, field: "precondition", msg: "operator $regex is not supported"},
		{p: fleet.Preset{Schedule: "0 2 * * *"}, field: "schedule", msg: "looks like a cron expression without the duration"},
		{p: fleet.Preset{Schedule: "3600 0 2 * *"}, field: "schedule", msg: "has 4 fields"},
		{p: fleet.Preset{Schedule: "3600 0 25 * * *"}, field: "schedule", msg: "hour field: 25 is out of range"},
		{p: fleet.Preset{Channel: "task_123"}, field: "channel", msg: "task channels"},
		{p: fleet.Preset{Channel: "a\x00b"}, field: "channel", msg: "control character"},
		{p: fleet.Preset{Channel: long}, field: "channel", msg: "longer than 128 bytes"},
		{p: fleet.Preset{Channel: " "}, field: "channel", msg: "empty channel"},
		{p: fleet.Preset{Events: map[string]bool{"": true}}, field: "events", msg: "empty event"},
		{p: fleet.Preset{Events: map[string]bool{"0 BOOT\x01": true}}, field: "events", msg: "control character"},
		{p: fleet.Preset{Events: map[string]bool{"1 BOOT": true, "1_BOOT": false}}, field: "events", msg: "both required and excluded"},
		{p: fleet.Preset{Events: manyEvents}, field: "events", msg: "more than 32 events"},
		{p: fleet.Preset{Provisions: [][]any{{}}}, field: "provisions[0]", msg: "empty provision"},
		{p: fleet.Preset{Provisions: [][]any{{"ok"}, {1.0, "x"}}}, field: "provisions[1][0]", msg: "starts with its name"},
		{p: fleet.Preset{Provisions: [][]any{{""}}}, field: "provisions[0][0]", msg: "empty provision name"},
		{p: fleet.Preset{Provisions: [][]any{{"value", map[string]any{"a": 1.0}}}}, field: "provisions[0][1]", msg: "not an object"},
		{p: fleet.Preset{Provisions: [][]any{{"value", "x", math.NaN()}}}, field: "provisions[0][2]", msg: "not a non-finite number"},
		{p: fleet.Preset{Provisions: [][]any{{"value", []any{"PARAM", "a..b"}}}}, field: "provisions[0][1]", msg: "empty segment"},
		{p: fleet.Preset{Provisions: [][]any{{"value", []any{}}}}, field: "provisions[0][1]", msg: "empty array"},
		{p: fleet.Preset{Provisions: [][]any{manyArgs}}, field: "provisions[0]", msg: "more than 64 arguments"},
		{p: fleet.Preset{Provisions: manyProvisions}, field: "provisions", msg: "more than 256 provisions"},
	} {
		tc.p.Name = "p1"
		_, err := Compile(&tc.p)
		var pe *Error
		if !errors.As(err, &pe) || !errors.Is(err, ErrInvalid) {
			t.Errorf("Compile(%+v) = %v, want an *Error wrapping ErrInvalid", tc.p, err)
			continue
		}
		if pe.Field != tc.field || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Compile(%+v) = field %q, %q; want %q containing %q", tc.p, pe.Field, err, tc.field, tc.msg)
		}
		if !strings.HasPrefix(err.Error(), `preset "p1": `+tc.field+": ") || strings.Contains(err.Error(), "invalid preset") {
			t.Errorf("message %q", err)
		}
		var ee *expr.Error
		if tc.line != 0 {
			if !errors.As(err, &ee) || ee.Line != tc.line || ee.Column != tc.column {
				t.Errorf("Compile(%+v): %v, want an *expr.Error at %d:%d", tc.p, err, tc.line, tc.column)
			}
		}
	}
	if _, err := Compile(&fleet.Preset{Precondition: "("}); err == nil || strings.HasPrefix(err.Error(), "preset") {
		t.Fatalf("unnamed: %v", err)
	}
}

func TestLegacyPrecondition(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{}`, `true`},
		{`{"test": "test"}`, `test = "test"`},
		{`{"test": {"$eq": "test"}}`, `test = "test"`},
		{`{"test": {"$ne": "test"}}`, `test <> "test" OR test IS NULL`},
		{`{"test": {"$gte": "test"}}`, `test >= "test"`},
		{`{"test": {"$lt": 5, "$gt": 1}}`, `test > 1 AND test < 5`},
		{`{"test": 5}`, `test = 5`},
		{`{"test": true}`, `test = true`},
		{`{"test": null}`, `test IS NULL`},
		{`{"Tags.test": true}`, `Tags.test IS NOT NULL`},
		{`{"Tags.test": false}`, `Tags.test IS NULL`},
		{`{"Tags.test": {"$exists": true}}`, `Tags.test IS NOT NULL`},
		{`{"Tags.test": {"$exists": false}}`, `Tags.test IS NULL`},
		{`{"Tags.test": {"$ne": true}}`, `Tags.test IS NULL`},
		{`{"Tags.test": {"$ne": false}}`, `Tags.test IS NOT NULL`},
		{`{"Tags.test": {"$eq": true}}`, `Tags.test IS NOT NULL`},
		{`{"_tags": "test"}`, `Tags.test IS NOT NULL`},
		{`{"_tags": {"$ne": "test"}}`, `Tags.test IS NULL`},
		{`{"_tags": {"$eq": "test"}}`, `Tags.test IS NOT NULL`},
		{`{"$and": [{"test": "test"}, {"test": {"$ne": "test"}}]}`, `test = "test" AND (test <> "test" OR test IS NULL)`},
		{`{"test": "test", "test2": "test2"}`, `test = "test" AND test2 = "test2"`},
		{`{"$or": [{"test": "test"}, {"test": {"$ne": "test"}}]}`, `test = "test" OR (test <> "test" OR test IS NULL)`},
		{`{"test": {"$gte": "test1", "$ne": "test2"}}`, `test >= "test1" AND (test <> "test2" OR test IS NULL)`},
		{`{"$and": []}`, `true`},
		{`{"$or": []}`, `false`},
		{`{"$or": [{"a": 1}]}`, `a = 1`},
		{`{"_id": "202BC1-BM632w-000001"}`, `DeviceID.ID = "202BC1-BM632w-000001"`},
		{`{"_deviceId._SerialNumber": "S1", "Device.X._value": 2}`, `Device.X = 2 AND DeviceID.SerialNumber = "S1"`},
		{` {"a": 1} `, `a = 1`},
	} {
		c, err := Compile(&fleet.Preset{Name: "l", Precondition: tc.in})
		if err != nil {
			t.Errorf("legacy %s: %v", tc.in, err)
			continue
		}
		if got := c.Precondition.String(); got != tc.want {
			t.Errorf("legacy %s = %s, want %s", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, msg string }{
		{`{"test": {"$gee": "test"}}`, "operator $gee is not supported"},
		{`{"test": []}`, "want a value or {operator: value}"},
		{`{"Tags.test": {"$gt": true}}`, "invalid tag query"},
		{`{"Tags.test": "yes"}`, "invalid tag query"},
		{`{"_tags": []}`, "want a tag name"},
		{`{"_tags": {"$gt": "test"}}`, "operator $gt is not supported"},
		{`{"_tags": {"$eq": 1}}`, "only string values"},
		{`{"_tags": "a b"}`, `tag "a b" cannot be named`},
		{`{"$nor": []}`, "operator $nor is not supported"},
		{`{"$and": {}}`, "takes an array"},
		{`{"$and": [1]}`, "is not a query object"},
		{`{"_lastInform": 1}`, `key "_lastInform" is not supported`},
		{`{"a b": 1}`, `key "a b"`},
		{`{"a": {}}`, "empty operator object"},
		{`{"a": {"$eq": null}}`, "takes a string, number or boolean"},
		{`{"a": 1e999}`, "number 1e999 is out of range"},
		{`{"a": {"$lt": 1e999}}`, "takes a string, number or boolean"},
		{`{"a": 1} x`, "trailing data"},
		{`{"a": 1`, "not valid JSON"},
		{`[1]`, "unexpected character '['"},
	} {
		_, err := Compile(&fleet.Preset{Name: "l", Precondition: tc.in})
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("legacy %s = %v, want ErrInvalid containing %q", tc.in, err, tc.msg)
		}
	}
	deep := strings.Repeat(`{"$and": [`, expr.MaxDepth+2) + `{}` + strings.Repeat(`]}`, expr.MaxDepth+2)
	if _, err := Compile(&fleet.Preset{Precondition: deep}); err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Fatalf("deep legacy: %v", err)
	}
}

func TestEventKey(t *testing.T) {
	for in, want := range map[string]string{
		"0 BOOTSTRAP": "0_BOOTSTRAP", "0_BOOTSTRAP": "0_BOOTSTRAP", "M  Reboot": "M_Reboot",
		" 6 CONNECTION\tREQUEST ": "_6_CONNECTION_REQUEST_", "2 PERIODIC": "2_PERIODIC",
	} {
		if got := EventKey(in); got != want {
			t.Errorf("EventKey(%q) = %q, want %q", in, got, want)
		}
	}
}
