package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/edgeacs/edgeacs/client"
	"github.com/edgeacs/edgeacs/fleet"
)

func TestParseAssign(t *testing.T) {
	for _, tt := range []struct {
		in, name, value, typ string
		ok                   bool
	}{
		{"A.B=1", "A.B", "1", "", true},
		{"A.B=1:int", "A.B", "1", "xsd:int", true},
		{"A.B=1:xsd:unsignedInt", "A.B", "1", "xsd:unsignedInt", true},
		{"A.B=true:Boolean", "A.B", "true", "xsd:boolean", true},
		{"A.Time=12:30", "A.Time", "12:30", "", true},
		{"A.URL=http://x:80/", "A.URL", "http://x:80/", "", true},
		{"A.B=a:int:string", "A.B", "a:int", "xsd:string", true},
		{"A.B=", "A.B", "", "", true},
		{"A.B=x=y", "A.B", "x=y", "", true},
		{"A.B", "", "", "", false},
		{"=1", "", "", "", false},
	} {
		name, value, typ, ok := parseAssign(tt.in)
		if name != tt.name || value != tt.value || typ != tt.typ || ok != tt.ok {
			t.Errorf("parseAssign(%q) = %q %q %q %v; want %q %q %q %v", tt.in, name, value, typ, ok, tt.name, tt.value, tt.typ, tt.ok)
		}
	}
}

func TestComparePaths(t *testing.T) {
	got := []string{"A.10.B", "A.2.B", "A.B", "A.1.", "A.1.C", "A.Z", "B"}
	slices.SortFunc(got, comparePaths)
	want := []string{"A.1.", "A.1.C", "A.2.B", "A.10.B", "A.B", "A.Z", "B"}
	if !slices.Equal(got, want) {
		t.Fatalf("sorted %v, want %v", got, want)
	}
}

// TestCommandArgs: flags after the arguments are read, "--" ends them,
// an unknown one is a usage error, and devices tag's -tag is an argument.
func TestCommandArgs(t *testing.T) {
	var got []string
	var gotJSON bool
	var gotTimeout string
	dash := false
	app := &cli.App{
		Name: "x", Writer: &bytes.Buffer{}, ErrWriter: &bytes.Buffer{},
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{{
			Name:  "cmd",
			Flags: []cli.Flag{&cli.BoolFlag{Name: "json"}, &cli.DurationFlag{Name: "timeout"}},
			Action: func(c *cli.Context) error {
				args, _, err := commandArgs(c, dash)
				got, gotJSON, gotTimeout = args, c.Bool("json"), c.Duration("timeout").String()
				return err
			},
		}},
	}
	for _, tt := range []struct {
		args    []string
		dash    bool
		want    []string
		json    bool
		timeout string
		code    int
	}{
		{[]string{"a", "b"}, false, []string{"a", "b"}, false, "0s", 0},
		{[]string{"a", "--json", "b", "--timeout", "5s"}, false, []string{"a", "b"}, true, "5s", 0},
		{[]string{"a", "--timeout=2s", "-json"}, false, []string{"a"}, true, "2s", 0},
		{[]string{"a", "--", "--json"}, false, []string{"a", "--json"}, false, "0s", 0},
		{[]string{"a", "--bogus"}, false, nil, false, "0s", 2},
		{[]string{"a", "--timeout"}, false, nil, false, "0s", 2},
		{[]string{"a", "--timeout", "soon"}, false, nil, false, "0s", 2},
		{[]string{"dev", "+x", "-y", "--json"}, true, []string{"dev", "+x", "-y"}, true, "0s", 0},
		{[]string{"dev", "--y"}, true, nil, false, "0s", 2},
	} {
		dash, got, gotJSON, gotTimeout = tt.dash, nil, false, ""
		err := app.Run(append([]string{"x", "cmd"}, tt.args...))
		code := 0
		if ec, ok := err.(cli.ExitCoder); ok {
			code = ec.ExitCode()
		}
		if code != tt.code || (code == 0 && (!slices.Equal(got, tt.want) || gotJSON != tt.json || gotTimeout != tt.timeout)) {
			t.Errorf("%v: args %v json %v timeout %s exit %d (%v); want %v %v %s exit %d", tt.args, got, gotJSON, gotTimeout, code, err, tt.want, tt.json, tt.timeout, tt.code)
		}
	}
}

// TestMaskTask: --json shows a hidden value as the mask, never "" (which
// reads as empty) and never the value.
func TestMaskTask(t *testing.T) {
	tk := &fleet.Task{ID: "t", Name: fleet.TaskSetParameterValues, Password: "",
		ParameterValues: []fleet.ParameterValue{{Name: "A.WiFi.X.KeyPassphrase", Value: ""}, {Name: "A.Plain", Value: "p"}},
		Result:          &fleet.TaskResult{ParameterValues: []fleet.ParameterValue{{Name: "A.Other", Value: "", Type: "xsd:string"}}}}
	m := maskTask(client.Task{Task: tk, Redacted: []string{"A.WiFi.X.KeyPassphrase", "A.Other", fleet.RedactedPassword}})
	if m.ParameterValues[0].Value != secretMask || m.ParameterValues[1].Value != "p" || m.Result.ParameterValues[0].Value != secretMask || m.Password != secretMask {
		t.Fatalf("masked %+v %+v", m.Task, m.Result)
	}
	if tk.ParameterValues[0].Value != "" || tk.Result.ParameterValues[0].Value != "" || tk.Password != "" {
		t.Fatal("maskTask changed its argument")
	}
}

// TestFaultLines: why a task did not end done, one line per problem; a
// 9006 says which type was sent, when the task says, since the CPE's own
// text often does not.
func TestFaultLines(t *testing.T) {
	const enable, number = "IGD.Line.1.Enable", "IGD.Line.1.DirectoryNumber"
	spv := func(pvs []fleet.ParameterValue, detail map[string]string) client.Task {
		return client.Task{Task: &fleet.Task{ID: "t1", Device: "dev1", Name: fleet.TaskSetParameterValues, Status: fleet.StatusFault, ParameterValues: pvs,
			Fault: &fleet.TaskFault{Code: "9003", Message: "Invalid arguments", Detail: detail}}}
	}
	tests := []struct {
		name string
		task client.Task
		want []string
	}{
		{"one line per parameter, in path order",
			spv([]fleet.ParameterValue{{Name: number, Value: "1", Type: "xsd:string"}, {Name: enable, Value: "abc", Type: "xsd:boolean"}},
				map[string]string{number: "9007 Invalid parameter value", enable: "9006 Invalid parameter type"}),
			[]string{"p: " + number + ": fault 9007 Invalid parameter value",
				"p: " + enable + ": fault 9006 Invalid parameter type (sent as xsd:boolean; edgeacs get dev1 " + enable + " shows the device's type)"}},
		{"a 9006 on a value sent without a type",
			spv([]fleet.ParameterValue{{Name: enable, Value: "abc"}}, map[string]string{enable: "9006 Invalid parameter type"}),
			[]string{"p: " + enable + ": fault 9006 Invalid parameter type (give the type: PATH=VALUE:TYPE)"}},
		{"a fault without detail",
			client.Task{Task: &fleet.Task{ID: "t2", Status: fleet.StatusFault, Fault: &fleet.TaskFault{Code: "9001", Message: "9001 Request denied"}}},
			[]string{"p: fault 9001 Request denied"}},
		{"expired",
			client.Task{Task: &fleet.Task{ID: "t3", Status: fleet.StatusExpired}},
			[]string{"p: task t3 expired before the device ran it"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := faultLines("p: ", tc.task); !slices.Equal(got, tc.want) {
				t.Errorf("faultLines:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestPrintTaskRefusedParameters: tasks show lists the parameters a CPE
// refused after the fields, one line each in path order, so that a long
// path does not widen the fields' column.
func TestPrintTaskRefusedParameters(t *testing.T) {
	const long = "InternetGatewayDevice.Services.VoiceService.1.VoiceProfile.1.Line.1.CallingFeatures.CallerIDEnable"
	tk := client.Task{Task: &fleet.Task{ID: "t1", Device: "d1", Name: fleet.TaskSetParameterValues, Status: fleet.StatusFault,
		Fault: &fleet.TaskFault{Code: "9003", Message: "Invalid arguments", Detail: map[string]string{long: "9007 Invalid parameter value", "A.B": "9006 Invalid parameter type"}}}}
	var b bytes.Buffer
	printTask(&b, tk)
	out := b.String()
	for _, want := range []string{"Task     t1\n", "Fault    9003 Invalid arguments\n", "\nRefused parameters:\nA.B: 9006 Invalid parameter type\n" + long + ": 9007 Invalid parameter value\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("tasks show lacks %q:\n%s", want, out)
		}
	}
}

// TestProgressDraws: on a terminal the bar shows the counts; elsewhere
// nothing is drawn.
func TestProgressDraws(t *testing.T) {
	var plain bytes.Buffer
	p := newBulkProgress(&plain, "reboot", 3)
	p.ended(fleet.StatusDone)
	p.finish()
	if plain.Len() != 0 {
		t.Fatalf("drawn on a non-terminal: %q", plain.String())
	}
	forceTerminal = true
	defer func() { forceTerminal = false }()
	var term bytes.Buffer
	p = newBulkProgress(&term, "reboot", 3)
	p.ended(fleet.StatusDone)
	p.ended(fleet.StatusFault)
	p.ended(fleet.StatusDone)
	p.finish()
	if out := term.String(); !strings.Contains(out, "reboot: 2 done, 1 fault, 0 pending") || !strings.Contains(out, "3/3") {
		t.Fatalf("bar: %q", out)
	}
	var spun bytes.Buffer
	sp := startSpinner(&spun, "reboot on dev")
	sp.stop()
	if out := spun.String(); !strings.Contains(out, "reboot on dev") || !strings.HasSuffix(out, "\r\033[K") {
		t.Fatalf("spinner: %q", out)
	}
}
