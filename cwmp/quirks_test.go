package cwmp

import (
	"errors"
	"testing"
	"time"
)

// fixtureCharsets is the HTTP charset a fixture comes with (its
// Content-Type), for the quirks that depend on it.
var fixtureCharsets = map[string]string{
	"quirk-http-charset-latin1.xml":   "ISO-8859-1",
	"quirk-http-charset-cp1252.xml":   "windows-1252",
	"quirk-http-charset-declared.xml": "ISO-8859-1",
}

// quirkChecks are the fixtureChecks of issue 14's field quirks, each
// fixture written from the quirk's description.
var quirkChecks = map[string]func(t *testing.T, env *Envelope, err error){
	"quirk-http-charset-latin1.xml": func(t *testing.T, env *Envelope, err error) {
		m := bodyAs[*Inform](t, env)
		eq(t, "Manufacturer", m.DeviceId.Manufacturer, "Société Générale Télécom")
		eq(t, "SSID", m.ParameterList[0].Value, "Café Zoë")
	},
	"quirk-http-charset-cp1252.xml": func(t *testing.T, env *Envelope, err error) {
		eq(t, "SSID", bodyAs[*GetParameterValuesResponse](t, env).ParameterList[0].Value, "Bob’s €5 WiFi")
	},
	"quirk-http-charset-declared.xml": func(t *testing.T, env *Envelope, err error) {
		eq(t, "SSID", bodyAs[*GetParameterValuesResponse](t, env).ParameterList[0].Value, "Café")
	},
	"quirk-gpn-bad-writable.xml": func(t *testing.T, env *Envelope, err error) {
		l := bodyAs[*GetParameterNamesResponse](t, env).ParameterList
		if len(l) != 6 {
			t.Fatalf("got %d entries, want 6 of 7: %+v", len(l), l)
		}
		for _, pi := range l {
			if !pi.Writable {
				t.Errorf("%s: Writable false, want true", pi.Name)
			}
			if pi.Name == "InternetGatewayDevice.Services.FAPService.1.REM.Mode" {
				t.Errorf("the entry with Writable=sometimes was kept")
			}
		}
		deepEq(t, "skipped", env.Skipped, []SkippedEntry{{List: "ParameterList", Index: 4, Field: "Writable", Reason: "invalid_boolean", Value: "sometimes"}})
		eq(t, "SkippedTotal", env.SkippedTotal, 1)
	},
	"quirk-gpv-bad-entries.xml": func(t *testing.T, env *Envelope, err error) {
		deepEq(t, "params", bodyAs[*GetParameterValuesResponse](t, env).ParameterList, []ParameterValue{
			{Name: "InternetGatewayDevice.DeviceInfo.UpTime", Value: "77", Type: TypeUnsignedInt},
			{Name: "InternetGatewayDevice.DeviceInfo.HardwareVersion", Value: "hw2", Type: TypeString},
		})
		deepEq(t, "skipped", env.Skipped, []SkippedEntry{
			{List: "ParameterList", Index: 1, Field: "Name", Reason: "missing_name"},
			{List: "ParameterList", Index: 2, Field: "Name", Reason: "missing_name"},
		})
	},
	"quirk-gpa-bad-notification.xml": func(t *testing.T, env *Envelope, err error) {
		deepEq(t, "attrs", bodyAs[*GetParameterAttributesResponse](t, env).ParameterList, []ParameterAttribute{
			{Name: "InternetGatewayDevice.DeviceInfo.SoftwareVersion", Notification: 2},
		})
		deepEq(t, "skipped", env.Skipped, []SkippedEntry{{List: "ParameterList", Index: 1, Field: "Notification", Reason: "invalid_int", Value: "active"}})
	},
	"quirk-event-case.xml": func(t *testing.T, env *Envelope, err error) {
		deepEq(t, "events", bodyAs[*Inform](t, env).Event, []Event{
			{Code: EventBoot}, {Code: EventBootstrap}, {Code: EventPeriodic}, {Code: EventMReboot}, {Code: "X A1B2C3 Custom"},
		})
	},
	"quirk-addobject-instance-0.xml": func(t *testing.T, env *Envelope, err error) {
		deepEq(t, "body", bodyAs[*AddObjectResponse](t, env), &AddObjectResponse{})
	},
	"quirk-currenttime-garbled.xml": func(t *testing.T, env *Envelope, err error) {
		m := bodyAs[*Inform](t, env)
		eq(t, "CurrentTime", m.CurrentTime, time.Time{})
		eq(t, "Serial", m.DeviceId.SerialNumber, "Q-TIME")
	},
	"quirk-oui-lowercase.xml": func(t *testing.T, env *Envelope, err error) {
		eq(t, "OUI", bodyAs[*Inform](t, env).DeviceId.OUI, "a1b2c3")
	},
	"quirk-oui-4char.xml": func(t *testing.T, env *Envelope, err error) {
		eq(t, "OUI", bodyAs[*Inform](t, env).DeviceId.OUI, "0A1B")
	},
	"quirk-oui-5char.xml": func(t *testing.T, env *Envelope, err error) {
		eq(t, "OUI", bodyAs[*Inform](t, env).DeviceId.OUI, "00A1B")
	},
	"quirk-mustunderstand-true.xml": func(t *testing.T, env *Envelope, err error) {
		header(t, env, "mu-true", ns10)
		bodyAs[*Inform](t, env)
	},
	"quirk-mustunderstand-0.xml": func(t *testing.T, env *Envelope, err error) {
		header(t, env, "mu-zero", ns10)
		bodyAs[*Inform](t, env)
	},
	"quirk-array-count-mismatch.xml": func(t *testing.T, env *Envelope, err error) {
		m := bodyAs[*Inform](t, env)
		eq(t, "events", len(m.Event), 1)
		eq(t, "params", len(m.ParameterList), 3)
	},
	"quirk-no-types.xml": func(t *testing.T, env *Envelope, err error) {
		m := bodyAs[*Inform](t, env)
		deepEq(t, "events", m.Event, []Event{{Code: EventPeriodic}})
		deepEq(t, "params", m.ParameterList, []ParameterValue{
			{Name: "InternetGatewayDevice.DeviceInfo.SoftwareVersion", Value: "1.0", Type: TypeString},
			{Name: "InternetGatewayDevice.ManagementServer.ConnectionRequestURL", Value: "http://127.0.0.1:1/cr", Type: TypeString},
		})
	},
	"quirk-default-namespace-deviceid.xml": func(t *testing.T, env *Envelope, err error) {
		header(t, env, "q-1", ns10)
		deepEq(t, "DeviceId", bodyAs[*Inform](t, env).DeviceId, DeviceID{Manufacturer: "Acme", OUI: "A1B2C3", ProductClass: "Quirk", SerialNumber: "Q-DEFNS"})
	},
	"quirk-crlf-leading-blank.xml": func(t *testing.T, env *Envelope, err error) {
		m := bodyAs[*Inform](t, env)
		eq(t, "Serial", m.DeviceId.SerialNumber, "Q-CRLF")
		eq(t, "CurrentTime", m.CurrentTime, utc("2024-05-01T10:15:02Z"))
		eq(t, "params", len(m.ParameterList), 2)
	},
	"quirk-leading-dot-name.xml": func(t *testing.T, env *Envelope, err error) {
		deepEq(t, "params", bodyAs[*GetParameterValuesResponse](t, env).ParameterList, []ParameterValue{
			{Name: "InternetGatewayDevice.DeviceInfo.SoftwareVersion", Value: "2.0", Type: TypeString},
			{Name: "InternetGatewayDevice.DeviceInfo.HardwareVersion", Value: "hw2", Type: TypeString},
		})
	},
}

func init() {
	for name, check := range quirkChecks {
		fixtureChecks[name] = check
	}
}

// TestDecodeCharsetRules: the HTTP charset applies to a document that
// declares no encoding; a declaration or a UTF-8 BOM wins; an unknown
// label is ignored; without it Latin-1 bytes are not UTF-8.
func TestDecodeCharsetRules(t *testing.T) {
	doc := func(prefix, ck string) []byte {
		return []byte(prefix + `<Envelope><Body><Reboot><CommandKey>` + ck + `</CommandKey></Reboot></Body></Envelope>`)
	}
	cases := []struct {
		name, charset string
		data          []byte
		want          string
		err           bool
	}{
		{"latin1 by HTTP", "ISO-8859-1", doc("", "caf\xe9"), "café", false},
		{"quoted label any case", `"iso-8859-1"`, doc("", "caf\xe9"), "café", false},
		{"cp1252 by HTTP", "windows-1252", doc("", "\x80"), "€", false},
		{"undefined cp1252 byte stays C1", "cp1252", doc("", "\x81"), "\u0081", false},
		{"declaration without encoding: HTTP applies", "latin1", doc(`<?xml version="1.0"?>`, "caf\xe9"), "café", false},
		{"declaration wins", "ISO-8859-1", doc(`<?xml version="1.0" encoding="UTF-8"?>`, "café"), "café", false},
		{"declared latin1 wins over HTTP utf-8", "utf-8", doc(`<?xml version='1.0' encoding='ISO-8859-1'?>`, "caf\xe9"), "café", false},
		{"BOM wins", "ISO-8859-1", doc("\xef\xbb\xbf", "café"), "café", false},
		{"unknown HTTP label ignored", "x-klingon", doc("", "café"), "café", false},
		{"utf-8 by HTTP", "utf-8", doc("", "café"), "café", false},
		{"no charset: latin1 bytes refused", "", doc("", "caf\xe9"), "", true},
	}
	for _, c := range cases {
		env, err := Decoder{}.DecodeCharset(c.data, c.charset)
		if c.err {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: err %v, want ErrMalformed", c.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		eq(t, c.name, env.Body.(*Reboot).CommandKey, c.want)
	}
}

func TestCharsetFromContentType(t *testing.T) {
	for in, want := range map[string]string{
		`text/xml; charset=ISO-8859-1`:     "ISO-8859-1",
		`text/xml;charset="utf-8"`:         "utf-8",
		`text/xml; CharSet = 'latin1' ; x`: "latin1",
		`text/xml`:                         "",
		``:                                 "",
		`text/xml; boundary=x; charset=`:   "",
	} {
		eq(t, in, CharsetFromContentType(in), want)
	}
}

func TestCanonicalEventCode(t *testing.T) {
	for in, want := range map[string]string{
		"1 BOOT":                       EventBoot,
		"1 boot":                       EventBoot,
		" 0  bootstrap\t":              EventBootstrap,
		"6 Connection Request":         EventConnectionRequest,
		"m download":                   EventMDownload,
		"M ScheduleInform":             EventMScheduleInform,
		"X 00D09E Vendor Thing":        "X 00D09E Vendor Thing",
		"  X 00D09E  spaced  ":         "X 00D09E  spaced",
		"":                             "",
		"15 NEW EVENT FROM THE FUTURE": "15 NEW EVENT FROM THE FUTURE",
	} {
		eq(t, in, CanonicalEventCode(in), want)
	}
}

// TestLenientEntries: every list of every message keeps its good entries
// when one is malformed; a bad field outside a list still fails the
// envelope.
func TestLenientEntries(t *testing.T) {
	wrap := func(rpc string) []byte {
		return []byte(`<E:Envelope xmlns:E="http://schemas.xmlsoap.org/soap/envelope/"><E:Body>` + rpc + `</E:Body></E:Envelope>`)
	}
	cases := []struct {
		name, rpc string
		check     func(t *testing.T, env *Envelope)
	}{
		{"queued transfers", `<GetQueuedTransfersResponse><TransferList><Q><CommandKey>a</CommandKey><State>x</State></Q><Q><CommandKey>b</CommandKey><State>2</State></Q></TransferList></GetQueuedTransfersResponse>`,
			func(t *testing.T, env *Envelope) {
				deepEq(t, "list", env.Body.(*GetQueuedTransfersResponse).TransferList, []QueuedTransfer{{CommandKey: "b", State: 2}})
			}},
		{"options", `<GetOptionsResponse><OptionList><O><OptionName>a</OptionName><VoucherSN>-3</VoucherSN></O><O><OptionName>b</OptionName></O></OptionList></GetOptionsResponse>`,
			func(t *testing.T, env *Envelope) {
				eq(t, "options", len(env.Body.(*GetOptionsResponse).OptionList), 1)
			}},
		{"du results", `<DUStateChangeComplete><Results><R><UUID>a</UUID><Fault><FaultCode>x</FaultCode></Fault></R><R><UUID>b</UUID></R></Results></DUStateChangeComplete>`,
			func(t *testing.T, env *Envelope) {
				deepEq(t, "results", env.Body.(*DUStateChangeComplete).Results, []OpResult{{UUID: "b"}})
			}},
		{"spv faults", `<Fault><faultcode>Client</faultcode><detail><Fault><FaultCode>9003</FaultCode><SetParameterValuesFault><ParameterName>a</ParameterName><FaultCode>oops</FaultCode></SetParameterValuesFault><SetParameterValuesFault><ParameterName>b</ParameterName><FaultCode>9007</FaultCode></SetParameterValuesFault></Fault></detail></Fault>`,
			func(t *testing.T, env *Envelope) {
				deepEq(t, "faults", env.Body.(*Fault).SetParameterValuesFaults, []SetParameterValuesFault{{ParameterName: "b", FaultCode: 9007}})
			}},
		{"inform event without code", `<Inform><DeviceId><OUI>A</OUI><SerialNumber>S</SerialNumber></DeviceId><Event><E><EventCode> </EventCode></E><E><EventCode>2 PERIODIC</EventCode></E></Event></Inform>`,
			func(t *testing.T, env *Envelope) {
				deepEq(t, "events", env.Body.(*Inform).Event, []Event{{Code: EventPeriodic}})
				deepEq(t, "skipped", env.Skipped, []SkippedEntry{{List: "Event", Index: 0, Field: "EventCode", Reason: "missing_eventcode"}})
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env, err := Decode(wrap(c.rpc))
			if err != nil {
				t.Fatal(err)
			}
			if env.SkippedTotal != 1 || len(env.Skipped) != 1 {
				t.Fatalf("skipped %d %+v, want one", env.SkippedTotal, env.Skipped)
			}
			c.check(t, env)
		})
	}
	t.Run("outside a list the envelope fails", func(t *testing.T) {
		if _, err := Decode(wrap(`<AddObjectResponse><InstanceNumber>one</InstanceNumber></AddObjectResponse>`)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("err %v, want ErrMalformed", err)
		}
	})
	t.Run("booleans as integers outside lists", func(t *testing.T) {
		env, err := Decode(wrap(`<GetParameterNames><NextLevel>2</NextLevel></GetParameterNames>`))
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "NextLevel", env.Body.(*GetParameterNames).NextLevel, true)
	})
	t.Run("details are bounded", func(t *testing.T) {
		rpc := `<GetParameterValuesResponse><ParameterList>`
		for range 200 {
			rpc += `<P><Value>v</Value></P>`
		}
		env, err := Decode(wrap(rpc + `</ParameterList></GetParameterValuesResponse>`))
		if err != nil {
			t.Fatal(err)
		}
		if env.SkippedTotal != 200 || len(env.Skipped) != maxSkipped {
			t.Fatalf("skipped %d, detailed %d", env.SkippedTotal, len(env.Skipped))
		}
	})
}
