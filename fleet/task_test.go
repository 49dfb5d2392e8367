package fleet

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func TestParseTaskAccepts(t *testing.T) {
	tests := []struct {
		body  string
		check func(*Task) bool
	}{
		{`{"name":"setParameterValues","parameterValues":[["InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID","home","xsd:string"]]}`,
			func(t *Task) bool {
				return t.ParameterValues[0] == ParameterValue{Name: "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID", Value: "home", Type: "xsd:string"}
			}},
		{`{"name":"setParameterValues","parameterValues":[["A.B",true],["A.C",42],["A.D","x"],["A.E",4294967295]]}`,
			func(t *Task) bool {
				return t.ParameterValues[0].Type == "xsd:boolean" && t.ParameterValues[1] == ParameterValue{Name: "A.C", Value: "42", Type: "xsd:int"} &&
					t.ParameterValues[2].Type == "" && t.ParameterValues[3].Type == "xsd:unsignedInt"
			}},
		{`{"name":"getParameterValues","parameterNames":["Device.DeviceInfo."]}`, func(t *Task) bool { return len(t.ParameterNames) == 1 }},
		{`{"name":"refreshObject","objectName":"InternetGatewayDevice.WANDevice."}`, func(t *Task) bool { return t.ObjectName == "InternetGatewayDevice.WANDevice." }},
		{`{"name":"refreshObject","objectName":""}`, func(t *Task) bool { return t.ObjectName == "" }},
		{`{"name":"addObject","objectName":"Device.WiFi.SSID."}`, nil},
		{`{"name":"deleteObject","objectName":"Device.WiFi.SSID.3."}`, nil},
		{`{"name":"addObject","objectName":"Device.WiFi.SSID.","parameterValues":[["SSID","guest"],["Enable",true]]}`,
			func(t *Task) bool {
				return t.ParameterValues[0].Type == "xsd:string" && t.ParameterValues[1].Type == "xsd:boolean"
			}},
		{`{"name":"download","fileName":"fw_v2.bin"}`, func(t *Task) bool { return t.FileType == "1 Firmware Upgrade Image" }},
		{`{"name":"download","fileType":"3 Vendor Configuration File","fileName":"cfg.xml","targetFileName":"c.xml"}`, nil},
		{`{"name":"upload","fileType":"1 Vendor Configuration File","url":"http://x/up"}`, nil},
		{`{"name":"reboot"}`, nil},
		{`{"name":"factoryReset"}`, nil},
		{`{"name":"scheduleInform","delaySeconds":30}`, func(t *Task) bool { return t.DelaySeconds == 30 }},
		{`{"name":"getRPCMethods"}`, nil},
		// Virtual parameters: the edge runs their scripts; a task may
		// mix them with the CPE's own (GenieACS declares them together).
		{`{"name":"setParameterValues","parameterValues":[["VirtualParameters.wifiPassword","s3cret"],["Device.DeviceInfo.ProvisioningCode","x"]]}`,
			func(t *Task) bool { return t.ParameterValues[0].Name == "VirtualParameters.wifiPassword" }},
		{`{"name":"getParameterValues","parameterNames":["VirtualParameters.MAC","VirtualParameters.*"]}`, nil},
		{`{"name":"refreshObject","objectName":"VirtualParameters."}`, nil},
		{`{"name":"refreshObject","objectName":"VirtualParameters.MAC"}`, nil},
		{`{"name":"getParameterNames","parameterPath":"Device.","nextLevel":true}`, func(t *Task) bool { return t.NextLevel }},
		{`{"name":"getParameterAttributes","parameterNames":["Device.DeviceInfo.SoftwareVersion"]}`, nil},
		{`{"name":"setParameterAttributes","parameterAttributes":[{"name":"Device.DeviceInfo.SoftwareVersion","notification":2}]}`, nil},
		{`{"name":"reboot","expiry":60}`, func(t *Task) bool { return t.Expiry.Equal(now.Add(time.Minute)) }},
		{`{"_id":"x","device":"y","timestamp":"2020-01-01T00:00:00Z","name":"reboot"}`, nil},
	}
	for _, tt := range tests {
		task, err := ParseTask([]byte(tt.body), "dev1", now)
		if err != nil {
			t.Errorf("ParseTask(%s): %v", tt.body, err)
			continue
		}
		if task.Status != StatusPending || task.Device != "dev1" || !task.Timestamp.Equal(now) {
			t.Errorf("ParseTask(%s): stamped %+v", tt.body, task)
		}
		if tt.check != nil && !tt.check(task) {
			t.Errorf("ParseTask(%s): got %+v", tt.body, task)
		}
	}
}

func TestParseTaskRefuses(t *testing.T) {
	bodies := []string{
		``, `not json`, `[]`, `{}`, `{"name":"explode"}`,
		`{"name":"reboot","bogus":1}`,
		`{"name":"reboot"} {"name":"reboot"}`,
		`{"name":"setParameterValues"}`,
		`{"name":"setParameterValues","parameterValues":[]}`,
		`{"name":"setParameterValues","parameterValues":[["A.B"]]}`,
		`{"name":"setParameterValues","parameterValues":[["A.B","v","xsd:float"]]}`,
		`{"name":"setParameterValues","parameterValues":[["A.B.","v"]]}`,
		`{"name":"setParameterValues","parameterValues":[["","v"]]}`,
		`{"name":"setParameterValues","parameterValues":[["A.B",1.5]]}`,
		`{"name":"setParameterValues","parameterValues":[["A B","v"]]}`,
		`{"name":"getParameterValues"}`,
		`{"name":"getParameterValues","parameterNames":[""]}`,
		`{"name":"setParameterValues","parameterValues":[["VirtualParameters.*","v"]]}`,
		`{"name":"setParameterValues","parameterValues":[["VirtualParameters.a.b","v"]]}`,
		`{"name":"setParameterValues","parameterValues":[["VirtualParameters.","v"]]}`,
		`{"name":"getParameterValues","parameterNames":["VirtualParameters.a.b"]}`,
		`{"name":"getParameterValues","parameterNames":["VirtualParameters.[a:b]"]}`,
		`{"name":"refreshObject","objectName":"VirtualParameters.a.b."}`,
		`{"name":"addObject"}`,
		`{"name":"addObject","objectName":"Device.WiFi.SSID"}`,
		`{"name":"download"}`,
		`{"name":"deleteObject","objectName":"Device.WiFi.SSID.3.","parameterValues":[["SSID","x"]]}`,
		`{"name":"addObject","objectName":"Device.WiFi.SSID.","parameterValues":[[".SSID","x"]]}`,
		`{"name":"addObject","objectName":"Device.WiFi.SSID.","parameterValues":[["Security.","x"]]}`,
		`{"name":"addObject","objectName":"Device.WiFi.SSID.","parameterValues":[["A..B","x"]]}`,
		`{"name":"addObject","objectName":"Device.WiFi.SSID.","parameterValues":[["SSID","x","xsd:float"]]}`,
		`{"name":"upload"}`,
		`{"name":"reboot","commandKey":"` + strings.Repeat("k", 33) + `"}`,
		`{"name":"reboot","expiry":-1}`,
		`{"name":"setParameterAttributes","parameterAttributes":[{"name":"A.B","notification":9}]}`,
		`{"name":"setParameterAttributes","parameterAttributes":[{"name":"A.B"}]}`,
		`{"name":"getParameterValues","parameterNames":["` + strings.Repeat("a", 300) + `"]}`,
	}
	for _, b := range bodies {
		if task, err := ParseTask([]byte(b), "d", now); !errors.Is(err, ErrBadTask) {
			t.Errorf("ParseTask(%q) = %+v, %v; want ErrBadTask", b, task, err)
		}
	}
	big := make([]byte, MaxTaskBody+1)
	if _, err := ParseTask(big, "d", now); !errors.Is(err, ErrBadTask) {
		t.Errorf("oversized body: %v", err)
	}
}

func TestTaskJSONShape(t *testing.T) {
	task, err := ParseTask([]byte(`{"name":"setParameterValues","parameterValues":[["A.B","home","xsd:string"]]}`), "dev", now)
	if err != nil {
		t.Fatal(err)
	}
	task.ID = "01J"
	out, err := json.Marshal(task)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"_id", "device", "name", "status", "timestamp", "parameterValues"} {
		if _, ok := m[k]; !ok {
			t.Errorf("stored task JSON lacks %q: %s", k, out)
		}
	}
	if got := m["parameterValues"]; !reflect.DeepEqual(got, []any{[]any{"A.B", "home", "xsd:string"}}) {
		t.Errorf("parameterValues = %v", got)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	n := 2
	task := &Task{ID: "01J", Device: "d", Name: TaskSetParameterValues, Status: StatusFault, Timestamp: now,
		ParameterValues:     []ParameterValue{{Name: "A.B", Value: "1", Type: "xsd:int"}},
		ParameterAttributes: []ParameterAttribute{{Name: "A.B", Notification: &n}},
		Result:              &TaskResult{Status: 1, StartTime: now},
		Fault:               &TaskFault{Code: "9003", Message: "Invalid arguments", Detail: map[string]string{"A.B": "9007 bad"}}}
	fm := &FileMeta{Name: "fw.bin", FileType: "1 Firmware Upgrade Image", Size: 10, SHA256: "ab", Uploaded: now}
	ps := &Preset{Name: "p", Weight: 1, Events: map[string]bool{"1 BOOT": true}, Provisions: [][]any{{"refresh", "Device.DeviceInfo."}}}
	dd := &DeviceDelta{Device: "d", Edge: "e", LastInform: now, Events: []string{"1 BOOT"}, Parameters: []ParameterValue{{Name: "A", Value: "b", Type: "xsd:string"}}}
	for _, v := range []any{task, fm, ps, dd} {
		b, err := Marshal(v)
		if err != nil {
			t.Fatalf("Marshal %T: %v", v, err)
		}
		out := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		if err := Unmarshal(b, out); err != nil {
			t.Fatalf("Unmarshal %T: %v", v, err)
		}
		if !reflect.DeepEqual(v, out) {
			t.Errorf("round trip %T:\n got %+v\nwant %+v", v, out, v)
		}
	}
	b, _ := Marshal(task)
	if err := Unmarshal(b, &FileMeta{}); !errors.Is(err, ErrBadRecord) {
		t.Errorf("kind mismatch: %v", err)
	}
	for _, bad := range [][]byte{nil, {1}, {9, 1, 0}, {1, 1, 0xff, 0xff}} {
		if err := Unmarshal(bad, &Task{}); !errors.Is(err, ErrBadRecord) {
			t.Errorf("Unmarshal(%x) = %v", bad, err)
		}
	}
	if _, err := Marshal(42); err == nil {
		t.Error("Marshal(int) succeeded")
	}
}

func FuzzParseTask(f *testing.F) {
	f.Add([]byte(`{"name":"setParameterValues","parameterValues":[["A.B","home","xsd:string"]]}`))
	f.Add([]byte(`{"name":"download","fileName":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		task, err := ParseTask(b, "d", now)
		if err == nil && task.Validate() != nil {
			t.Fatalf("accepted task fails validation: %s", b)
		}
	})
}

// A CPE's value that is not valid UTF-8 must not make its record unreadable.
func TestRecordKeepsInvalidUTF8(t *testing.T) {
	dd := &DeviceDelta{Device: "d", Parameters: []ParameterValue{{Name: "A.B", Value: "caf\xe9", Type: "xsd:string"}}}
	b, err := Marshal(dd)
	if err != nil {
		t.Fatal(err)
	}
	var got DeviceDelta
	if err := Unmarshal(b, &got); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if got.Parameters[0].Value != "caf\xe9" {
		t.Fatalf("value %q", got.Parameters[0].Value)
	}
}
