package cwmp

import (
	"bytes"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// bodyAs returns env.Body as T or fails the test.
func bodyAs[T Message](t *testing.T, env *Envelope) T {
	t.Helper()
	m, ok := env.Body.(T)
	if !ok {
		var zero T
		t.Fatalf("body is %T, want %T", env.Body, zero)
	}
	return m
}

func eq[V comparable](t *testing.T, what string, got, want V) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func deepEq(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s =\n  %#v\nwant\n  %#v", what, got, want)
	}
}

func utc(s string) time.Time {
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return tm.UTC()
}

// header checks the envelope fields every fixture has.
func header(t *testing.T, env *Envelope, id, ns string) {
	t.Helper()
	eq(t, "ID", env.ID, id)
	eq(t, "HasID", env.HasID, true)
	eq(t, "Namespace", env.Namespace, ns)
}

const (
	ns10 = "urn:dslforum-org:cwmp-1-0"
	ns11 = "urn:dslforum-org:cwmp-1-1"
	ns12 = "urn:dslforum-org:cwmp-1-2"
	ns14 = "urn:dslforum-org:cwmp-1-4"
)

// fixtureChecks holds, for every file in testdata, what its decode must
// produce. TestFixturesAllChecked keeps this table complete.
var fixtureChecks = map[string]func(t *testing.T, env *Envelope, err error){
	"acs-fault-8000.xml": func(t *testing.T, env *Envelope, err error) {
		header(t, env, "kick-1", ns10)
		f := bodyAs[*Fault](t, env)
		deepEq(t, "fault", f, &Fault{SOAPCode: "Server", SOAPString: "CWMP fault", Code: 8000, String: "Method not supported"})
	},
	"acs-fault-8006-version.xml": func(t *testing.T, env *Envelope, err error) {
		header(t, env, "4711", ns12)
		f := bodyAs[*Fault](t, env)
		eq(t, "Code", f.Code, FaultACSVersionIncompatible)
		eq(t, "SOAPCode", f.SOAPCode, "Server")
	},
	"addobject-request.xml": func(t *testing.T, env *Envelope, err error) {
		header(t, env, "add-0006", ns10)
		deepEq(t, "body", bodyAs[*AddObject](t, env), &AddObject{
			ObjectName:   "InternetGatewayDevice.WANDevice.1.WANConnectionDevice.1.WANPPPConnection.1.PortMapping.",
			ParameterKey: "pm-1",
		})
	},
	"addobject-response.xml": func(t *testing.T, env *Envelope, err error) {
		deepEq(t, "body", bodyAs[*AddObjectResponse](t, env), &AddObjectResponse{InstanceNumber: 3})
	},
	"autonomous-dustatechangecomplete-response.xml": func(t *testing.T, env *Envelope, err error) {
		header(t, env, "adusc-1", ns12)
		bodyAs[*AutonomousDUStateChangeCompleteResponse](t, env)
	},
	"autonomous-dustatechangecomplete.xml": func(t *testing.T, env *Envelope, err error) {
		m := bodyAs[*AutonomousDUStateChangeComplete](t, env)
		deepEq(t, "results", m.Results, []AutonOpResult{{
			OpResult: OpResult{
				UUID:              "6ba7b812-9dad-11d1-80b4-00c04fd430c8",
				DeploymentUnitRef: "Device.SoftwareModules.DeploymentUnit.2",
				Version:           "2.0",
				CurrentState:      "Uninstalled",
				StartTime:         utc("2024-05-02T09:00:00Z"),
				CompleteTime:      utc("2024-05-02T09:00:05Z"),
			},
			OperationPerformed: "Uninstall",
		}})
	},
	"autonomous-transfer-complete-response.xml": func(t *testing.T, env *Envelope, err error) {
		bodyAs[*AutonomousTransferCompleteResponse](t, env)
	},
	"autonomous-transfer-complete.xml": func(t *testing.T, env *Envelope, err error) {
		header(t, env, "77", ns12)
		deepEq(t, "body", bodyAs[*AutonomousTransferComplete](t, env), &AutonomousTransferComplete{
			TransferURL:  "http://fw.vendor.example/XG6000-4.2.3.bin",
			IsDownload:   true,
			FileType:     "1 Firmware Upgrade Image",
			FileSize:     31461376,
			StartTime:    utc("2024-05-02T02:00:00Z"),
			CompleteTime: utc("2024-05-02T02:03:10Z"),
		})
	},
	"canceltransfer-request.xml": func(t *testing.T, env *Envelope, err error) {
		eq(t, "CommandKey", bodyAs[*CancelTransfer](t, env).CommandKey, "fw-night")
	},
	"canceltransfer-response.xml": func(t *testing.T, env *Envelope, err error) {
		bodyAs[*CancelTransferResponse](t, env)
	},
	"changedustate-nested.xml": func(t *testing.T, env *Envelope, err error) {
		deepEq(t, "body", bodyAs[*ChangeDUState](t, env), &ChangeDUState{Operations: []DUOperation{
			{Kind: "Update", UUID: "6ba7b810-9dad-11d1-80b4-00c04fd430c8", Version: "1.3", URL: "https://apps.example.net/speedtest-1.3.ipk"},
			{Kind: "Uninstall", UUID: "6ba7b811-9dad-11d1-80b4-00c04fd430c8"},
		}})
	},
	"changedustate-request.xml": func(t *testing.T, env *Envelope, err error) {
		header(t, env, "du-0015", ns12)
		deepEq(t, "body", bodyAs[*ChangeDUState](t, env), &ChangeDUState{
			Operations: []DUOperation{
				{Kind: "Install", URL: "https://apps.example.net/speedtest-1.2.ipk", ExecutionEnvRef: "Device.SoftwareModules.ExecEnv.1"},
				{Kind: "Uninstall", UUID: "6ba7b810-9dad-11d1-80b4-00c04fd430c8"},
			},
			CommandKey: "du-1",
		})
	},
	"changedustate-response.xml": func(t *testing.T, env *Envelope, err error) {
		bodyAs[*ChangeDUStateResponse](t, env)
	},
	"deleteobject-request.xml": func(t *testing.T, env *Envelope, err error) {
		m := bodyAs[*DeleteObject](t, env)
		eq(t, "ObjectName", m.ObjectName, "InternetGatewayDevice.WANDevice.1.WANConnectionDevice.1.WANPPPConnection.1.PortMapping.3.")
		eq(t, "ParameterKey", m.ParameterKey, "pm-2")
	},
	"deleteobject-response.xml": func(t *testing.T, env *Envelope, err error) {
		eq(t, "Status", bodyAs[*DeleteObjectResponse](t, env).Status, 1)
	},
	"download-request.xml": func(t *testing.T, env *Envelope, err error) {
		deepEq(t, "body", bodyAs[*Download](t, env), &Download{
			CommandKey: "fw-4.2.2",
			FileType:   "1 Firmware Upgrade Image",
			URL:        "http://fs.example.net:7567/XG6000-4.2.2.bin",
			FileSize:   31457280,
		})
	},
	"download-response.xml": func(t *testing.T, env *Envelope, err error) {
		deepEq(t, "body", bodyAs[*DownloadResponse](t, env), &DownloadResponse{Status: 1})
	},
	"dustatechangecomplete-response.xml": func(t *testing.T, env *Envelope, err error) {
		bodyAs[*DUStateChangeCompleteResponse](t, env)
	},
	"dustatechangecomplete.xml": func(t *testing.T, env *Envelope, err error) {
		m := bodyAs[*DUStateChangeComplete](t, env)
		eq(t, "CommandKey", m.CommandKey, "du-1")
		deepEq(t, "results", m.Results, []OpResult{
			{
				UUID:                 "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
				DeploymentUnitRef:    "Device.SoftwareModules.DeploymentUnit.1",
				Version:              "1.2",
				CurrentState:         "Installed",
				Resolved:             true,
				ExecutionUnitRefList: "Device.SoftwareModules.ExecutionUnit.1,Device.SoftwareModules.ExecutionUnit.2",
				StartTime:            utc("2024-05-01T08:00:00Z"),
				CompleteTime:         utc("2024-05-01T08:00:42Z"),
			},
			{
				UUID:         "6ba7b811-9dad-11d1-80b4-00c04fd430c8",
				CurrentState: "Failed",
				StartTime:    utc("2024-05-01T08:00:00Z"),
				Fault:        FaultStruct{Code: 9028, String: "Unknown Deployment Unit"},
			},
		})
	},
	"err-root-xmpp.xml": func(t *testing.T, env *Envelope, err error) {
		if !errors.Is(err, ErrNotEnvelope) {
			t.Errorf("err = %v, want ErrNotEnvelope", err)
		}
	},
	"err-unknown-method.xml": func(t *testing.T, env *Envelope, err error) {
		if !errors.Is(err, ErrUnknownMethod) {
			t.Fatalf("err = %v, want ErrUnknownMethod", err)
		}
		header(t, env, "x-77", ns11)
		if env.Body != nil {
			t.Errorf("Body = %T, want nil", env.Body)
		}
	},
	"factoryreset-request.xml": func(t *testing.T, env *Envelope, err error) {
		bodyAs[*FactoryReset](t, env)
	},
	"factoryreset-response.xml": func(t *testing.T, env *Envelope, err error) {
		bodyAs[*FactoryResetResponse](t, env)
	},
	"fault-9000-method-not-supported.xml": func(t *testing.T, env *Envelope, err error) {
		f := bodyAs[*Fault](t, env)
		eq(t, "Code", f.Code, FaultMethodNotSupported)
		eq(t, "SOAPCode", f.SOAPCode, "Client")
	},
	"fault-9005.xml": func(t *testing.T, env *Envelope, err error) {
		header(t, env, "gpv-0001", ns10)
		f := bodyAs[*Fault](t, env)
		deepEq(t, "fault", f, &Fault{SOAPCode: "Client", SOAPString: "CWMP fault", Code: 9005, String: "Invalid parameter name"})
	},
	"fault-spv-9003.xml": func(t *testing.T, env *Envelope, err error) {
		f := bodyAs[*Fault](t, env)
		eq(t, "Code", f.Code, FaultInvalidArguments)
		deepEq(t, "spv faults", f.SetParameterValuesFaults, []SetParameterValuesFault{
			{ParameterName: "InternetGatewayDevice.ManagementServer.PeriodicInformInterval", FaultCode: 9007, FaultString: "Invalid parameter value"},
			{ParameterName: "InternetGatewayDevice.DeviceInfo.SoftwareVersion", FaultCode: 9008, FaultString: "Attempt to set a non-writable parameter"},
		})
	},
	"fault-spv-multi.xml": func(t *testing.T, env *Envelope, err error) {
		header(t, env, "spv-0099", ns12)
		f := bodyAs[*Fault](t, env)
		eq(t, "SOAPCode", f.SOAPCode, "Client") // prefix stripped
		eq(t, "SOAPString", f.SOAPString, "CWMP fault")
		eq(t, "Code", f.Code, 9003)
		eq(t, "String", f.String, "Invalid arguments")
		if len(f.SetParameterValuesFaults) != 4 {
			t.Fatalf("got %d SPV faults, want 4", len(f.SetParameterValuesFaults))
		}
		codes := []uint32{9007, 9006, 9008, 9005}
		for i, sf := range f.SetParameterValuesFaults {
			eq(t, "FaultCode", sf.FaultCode, codes[i])
			eq(t, "FaultString", sf.FaultString, FaultMessage(codes[i]))
		}
		eq(t, "last name", f.SetParameterValuesFaults[3].ParameterName, "Device.X_NOPE.Enable")
	},
	"getallqueuedtransfers-request.xml": func(t *testing.T, env *Envelope, err error) {
		bodyAs[*GetAllQueuedTransfers](t, env)
	},
	"getallqueuedtransfers-response.xml": func(t *testing.T, env *Envelope, err error) {
		deepEq(t, "list", bodyAs[*GetAllQueuedTransfersResponse](t, env).TransferList, []AllQueuedTransfer{{
			CommandKey: "fw-night", State: 1, IsDownload: true, FileType: "1 Firmware Upgrade Image",
			FileSize: 31457280, TargetFileName: "fw.bin",
		}})
	},
	"getoptions-request.xml": func(t *testing.T, env *Envelope, err error) {
		eq(t, "OptionName", bodyAs[*GetOptions](t, env).OptionName, "X_EXAMPLE_VoIP")
	},
	"getoptions-response.xml": func(t *testing.T, env *Envelope, err error) {
		deepEq(t, "options", bodyAs[*GetOptionsResponse](t, env).OptionList, []Option{
			{OptionName: "X_EXAMPLE_VoIP", VoucherSN: 1001, State: 1, Mode: 2,
				StartDate: utc("2024-01-01T00:00:00Z"), ExpirationDate: utc("2025-01-01T00:00:00Z")},
			{OptionName: "X_EXAMPLE_IPTV", VoucherSN: 1002, State: 3, StartDate: utc("2024-02-01T12:30:00Z"), IsTransferable: 1},
		})
	},
	"getqueuedtransfers-request.xml": func(t *testing.T, env *Envelope, err error) {
		bodyAs[*GetQueuedTransfers](t, env)
	},
	"getqueuedtransfers-response.xml": func(t *testing.T, env *Envelope, err error) {
		deepEq(t, "list", bodyAs[*GetQueuedTransfersResponse](t, env).TransferList, []QueuedTransfer{
			{CommandKey: "fw-night", State: 1}, {CommandKey: "cfg-1", State: 2},
		})
	},
	"getrpcmethods-request.xml": func(t *testing.T, env *Envelope, err error) {
		header(t, env, "rpc-0010", ns10)
		bodyAs[*GetRPCMethods](t, env)
	},
	"getrpcmethods-response.xml": func(t *testing.T, env *Envelope, err error) {
		m := bodyAs[*GetRPCMethodsResponse](t, env)
		if len(m.MethodList) != 12 || m.MethodList[0] != "GetRPCMethods" || m.MethodList[11] != "FactoryReset" {
			t.Errorf("MethodList = %q", m.MethodList)
		}
	},
	"gpa-request.xml": func(t *testing.T, env *Envelope, err error) {
		deepEq(t, "names", bodyAs[*GetParameterAttributes](t, env).ParameterNames, []string{
			"InternetGatewayDevice.WANDevice.1.WANConnectionDevice.1.WANPPPConnection.1.ExternalIPAddress",
			"InternetGatewayDevice.LANDevice.1.Hosts.",
		})
	},
	"gpa-response.xml": func(t *testing.T, env *Envelope, err error) {
		deepEq(t, "list", bodyAs[*GetParameterAttributesResponse](t, env).ParameterList, []ParameterAttribute{{
			Name:         "InternetGatewayDevice.WANDevice.1.WANConnectionDevice.1.WANPPPConnection.1.ExternalIPAddress",
			Notification: 2,
		}})
	},
	"gpn-request.xml": func(t *testing.T, env *Envelope, err error) {
		deepEq(t, "body", bodyAs[*GetParameterNames](t, env), &GetParameterNames{ParameterPath: "InternetGatewayDevice.LANDevice.1.", NextLevel: true})
	},
	"gpn-response.xml": func(t *testing.T, env *Envelope, err error) {
		l := bodyAs[*GetParameterNamesResponse](t, env).ParameterList
		if len(l) != 5 {
			t.Fatalf("got %d entries, want 5", len(l))
		}
		deepEq(t, "writable", []bool{l[0].Writable, l[1].Writable, l[2].Writable, l[3].Writable, l[4].Writable},
			[]bool{false, false, false, true, false})
		eq(t, "name", l[4].Name, "InternetGatewayDevice.LANDevice.1.Hosts.")
	},
	"gpv-request.xml": func(t *testing.T, env *Envelope, err error) {
		deepEq(t, "names", bodyAs[*GetParameterValues](t, env).ParameterNames, []string{
			"InternetGatewayDevice.DeviceInfo.UpTime",
			"InternetGatewayDevice.ManagementServer.",
			"InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID",
		})
	},
	"gpv-response-300.xml": func(t *testing.T, env *Envelope, err error) {
		l := bodyAs[*GetParameterValuesResponse](t, env).ParameterList
		if len(l) != 300 {
			t.Fatalf("got %d params, want 300", len(l))
		}
		types := []string{TypeString, TypeUnsignedInt, TypeBoolean, TypeInt, TypeDateTime}
		for i, p := range l {
			eq(t, "type", p.Type, types[i%5])
			if err := ValidateValue(p.Type, p.Value); err != nil {
				t.Errorf("param %d: %v", i, err)
			}
		}
		deepEq(t, "last", l[299], ParameterValue{Name: "Device.X_TEST.Table.30.Param9", Value: "2024-05-01T10:59:00Z", Type: TypeDateTime})
	},
	"gpv-response.xml": func(t *testing.T, env *Envelope, err error) {
		l := bodyAs[*GetParameterValuesResponse](t, env).ParameterList
		if len(l) != 13 {
			t.Fatalf("got %d params, want 13", len(l))
		}
		deepEq(t, "first", l[0], ParameterValue{Name: "InternetGatewayDevice.DeviceInfo.UpTime", Value: "3605", Type: TypeUnsignedInt})
		deepEq(t, "ssid", l[12], ParameterValue{Name: "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID", Value: "Home-&-Garden", Type: TypeString})
		eq(t, "empty password", l[3].Value, "")
		b, berr := l[4].Bool()
		eq(t, "PeriodicInformEnable", b, true)
		eq(t, "bool err", berr, nil)
	},
	"inform-response-cwmp14.xml": func(t *testing.T, env *Envelope, err error) {
		header(t, env, "4711", ns12)
		eq(t, "UseCWMPVersion", env.UseCWMPVersion, "1.4")
		eq(t, "MaxEnvelopes", bodyAs[*InformResponse](t, env).MaxEnvelopes, 1)
	},
	"inform-response-holdrequests.xml": func(t *testing.T, env *Envelope, err error) {
		eq(t, "HoldRequests", env.HoldRequests, true)
		bodyAs[*InformResponse](t, env)
	},
	"inform-response.xml": func(t *testing.T, env *Envelope, err error) {
		header(t, env, "100001", ns10)
		eq(t, "HoldRequests", env.HoldRequests, false)
		eq(t, "MaxEnvelopes", bodyAs[*InformResponse](t, env).MaxEnvelopes, 1)
	},
	"inform-tr098-bootstrap.xml": func(t *testing.T, env *Envelope, err error) {
		header(t, env, "100001", ns10)
		m := bodyAs[*Inform](t, env)
		deepEq(t, "DeviceId", m.DeviceId, DeviceID{Manufacturer: "Huawei Technologies Co., Ltd", OUI: "00259E", ProductClass: "HG8245H", SerialNumber: "48575443A1B2C3D4"})
		deepEq(t, "Event", m.Event, []Event{{Code: EventBootstrap}, {Code: EventBoot}})
		eq(t, "CurrentTime", m.CurrentTime, utc("2024-05-01T08:15:02Z"))
		eq(t, "params", len(m.ParameterList), 8)
	},
	"inform-tr098-full.xml": func(t *testing.T, env *Envelope, err error) {
		header(t, env, "4711", ns10)
		m := bodyAs[*Inform](t, env)
		eq(t, "OUI", m.DeviceId.OUI, "A1B2C3")
		deepEq(t, "Event", m.Event, []Event{{Code: EventBoot}, {Code: EventTransferComplete}, {Code: EventMDownload, CommandKey: "fw-4.2.2"}, {Code: EventValueChange}})
		eq(t, "MaxEnvelopes", m.MaxEnvelopes, 1)
		eq(t, "RetryCount", m.RetryCount, 2)
		eq(t, "CurrentTime", m.CurrentTime, utc("2024-05-01T08:15:02Z"))
		if len(m.ParameterList) < 30 {
			t.Fatalf("got %d params, want 30+", len(m.ParameterList))
		}
		byName := map[string]ParameterValue{}
		for _, p := range m.ParameterList {
			if !strings.HasPrefix(p.Name, "InternetGatewayDevice.") {
				t.Errorf("param %q outside TR-098 root", p.Name)
			}
			if err := ValidateValue(p.Type, p.Value); err != nil {
				t.Errorf("%s: %v", p.Name, err)
			}
			byName[p.Name] = p
		}
		eq(t, "SSID", byName["InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID"].Value, "Café & Bar <5G>")
		eq(t, "noise type", byName["InternetGatewayDevice.WANDevice.1.WANDSLInterfaceConfig.UpstreamNoiseMargin"].Type, TypeInt)
		n, _ := byName["InternetGatewayDevice.WANDevice.1.WANDSLInterfaceConfig.UpstreamNoiseMargin"].Int()
		eq(t, "noise", n, -12)
		u, _ := byName["InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.TotalBytesSent"].Uint()
		eq(t, "bytes", u, 18446744073709551615)
		tm, _ := byName["InternetGatewayDevice.Time.CurrentLocalTime"].Time()
		eq(t, "local time", tm, utc("2024-05-01T08:15:02.123Z"))
		eq(t, "hex type", byName["InternetGatewayDevice.X_A1B2C3_Config.MAC"].Type, TypeHexBinary)
	},
	"inform-tr181.xml": func(t *testing.T, env *Envelope, err error) {
		header(t, env, "inf-181", ns12)
		eq(t, "SessionTimeout", env.SessionTimeout, 60)
		eq(t, "SupportedCWMPVersions", env.SupportedCWMPVersions, "1.0,1.1,1.2,1.3,1.4")
		m := bodyAs[*Inform](t, env)
		deepEq(t, "DeviceId", m.DeviceId, DeviceID{Manufacturer: "Example Networks", OUI: "D4E5F6", ProductClass: "Device2-HGW", SerialNumber: "D4E5F6-SN-0042"})
		deepEq(t, "Event", m.Event, []Event{{Code: EventPeriodic}, {Code: EventConnectionRequest}})
		if len(m.ParameterList) < 30 {
			t.Fatalf("got %d params, want 30+", len(m.ParameterList))
		}
		for _, p := range m.ParameterList {
			if !strings.HasPrefix(p.Name, "Device.") {
				t.Errorf("param %q outside TR-181 root", p.Name)
			}
		}
		eq(t, "root version", m.ParameterList[0], ParameterValue{Name: "Device.RootDataModelVersion", Value: "2.15", Type: TypeString})
		last := m.ParameterList[len(m.ParameterList)-2]
		eq(t, "spaces kept", last.Value, "  leading and trailing spaces  ")
	},
	"kicked-request.xml": func(t *testing.T, env *Envelope, err error) {
		deepEq(t, "body", bodyAs[*Kicked](t, env), &Kicked{
			Command: "activate", Referer: "http://portal.example.net/start", Arg: "plan=gold&term=12", Next: "http://portal.example.net/done",
		})
	},
	"kicked-response.xml": func(t *testing.T, env *Envelope, err error) {
		eq(t, "NextURL", bodyAs[*KickedResponse](t, env).NextURL, "http://portal.example.net/done?ok=1")
	},
	"quirk-bom.xml": func(t *testing.T, env *Envelope, err error) {
		header(t, env, "bom-1", ns10)
		eq(t, "Status", bodyAs[*SetParameterValuesResponse](t, env).Status, 1)
	},
	"quirk-cwmp14-namespace.xml": func(t *testing.T, env *Envelope, err error) {
		header(t, env, "ns14-1", ns14)
		eq(t, "SupportedCWMPVersions", env.SupportedCWMPVersions, "1.0,1.4")
		deepEq(t, "body", bodyAs[*TransferComplete](t, env), &TransferComplete{
			CommandKey:  "fw-1",
			FaultStruct: FaultStruct{Code: 9010, String: "Download failed"},
			StartTime:   utc("2024-05-01T08:16:05Z"),
			// "not a time" reads as Unknown Time.
		})
	},
	"quirk-easycwmp-empty-id.xml": func(t *testing.T, env *Envelope, err error) {
		header(t, env, "", ns12)
		eq(t, "SessionTimeout", env.SessionTimeout, 45)
		m := bodyAs[*Inform](t, env)
		deepEq(t, "Event", m.Event, []Event{{Code: EventConnectionRequest}})
		eq(t, "CurrentTime", m.CurrentTime, utc("2024-05-01T10:15:02Z"))
		deepEq(t, "params", m.ParameterList, []ParameterValue{
			{Name: "InternetGatewayDevice.ManagementServer.PeriodicInformEnable", Value: "TRUE", Type: TypeBoolean},
			{Name: "InternetGatewayDevice.DeviceInfo.UpTime", Value: "17", Type: TypeUnsignedInt},
		})
	},
	"quirk-empty-body.xml": func(t *testing.T, env *Envelope, err error) {
		header(t, env, "eb-1", ns12)
		eq(t, "HoldRequests", env.HoldRequests, true)
		if env.Body != nil {
			t.Errorf("Body = %T, want nil", env.Body)
		}
	},
	"quirk-empty-parameterkey.xml": func(t *testing.T, env *Envelope, err error) {
		deepEq(t, "body", bodyAs[*SetParameterValues](t, env), &SetParameterValues{ParameterList: []ParameterValue{
			{Name: "InternetGatewayDevice.DeviceInfo.ProvisioningCode", Value: "", Type: TypeString},
			{Name: "InternetGatewayDevice.ManagementServer.PeriodicInformInterval", Value: "300", Type: TypeInt},
		}})
	},
	"quirk-fault-no-detail.xml": func(t *testing.T, env *Envelope, err error) {
		deepEq(t, "fault", bodyAs[*Fault](t, env), &Fault{SOAPCode: "Server", SOAPString: "Internal error", Code: FaultInternalError, String: "Internal error"})
	},
	"quirk-latin1.xml": func(t *testing.T, env *Envelope, err error) {
		l := bodyAs[*GetParameterValuesResponse](t, env).ParameterList
		if len(l) != 1 {
			t.Fatalf("got %d params", len(l))
		}
		eq(t, "SSID", l[0].Value, "Café")
	},
	"quirk-soapenv-prefixed-children.xml": func(t *testing.T, env *Envelope, err error) {
		header(t, env, "mt-42", ns11)
		eq(t, "NoMoreRequests", env.NoMoreRequests, true)
		m := bodyAs[*Inform](t, env)
		eq(t, "Serial", m.DeviceId.SerialNumber, "A1B2C3D4E5F6")
		deepEq(t, "Event", m.Event, []Event{{Code: EventPeriodic}})
		eq(t, "CurrentTime (no zone = UTC)", m.CurrentTime, utc("2024-05-01T10:15:02Z"))
		deepEq(t, "params", m.ParameterList, []ParameterValue{
			{Name: "Device.DeviceInfo.SoftwareVersion", Value: "7.14.2", Type: TypeString},
			{Name: "Device.ManagementServer.ConnectionRequestURL", Value: "http://10.0.0.2:7547/", Type: TypeString},
			{Name: "Device.ManagementServer.PeriodicInformInterval", Value: "600", Type: TypeUnsignedInt},
		})
	},
	"quirk-whitespace.xml": func(t *testing.T, env *Envelope, err error) {
		header(t, env, "ws-0001", ns10)
		deepEq(t, "params", bodyAs[*GetParameterValuesResponse](t, env).ParameterList, []ParameterValue{
			{Name: "Device.WiFi.SSID.1.SSID", Value: "  two words \nnext line", Type: TypeString},
			{Name: "Device.DeviceInfo.UpTime", Value: "\t42\t", Type: TypeUnsignedInt},
		})
	},
	"quirk-wrong-arraytype-gpv.xml": func(t *testing.T, env *Envelope, err error) {
		deepEq(t, "names", bodyAs[*GetParameterValues](t, env).ParameterNames, []string{"Device.DeviceInfo.", "Device.Time."})
	},
	"quirk-wrong-arraytype.xml": func(t *testing.T, env *Envelope, err error) {
		l := bodyAs[*GetParameterValuesResponse](t, env).ParameterList
		if len(l) != 3 {
			t.Fatalf("got %d params, want 3 (arrayType says 0)", len(l))
		}
		eq(t, "base64 type", l[1].Type, TypeBase64)
	},
	"reboot-request.xml": func(t *testing.T, env *Envelope, err error) {
		eq(t, "CommandKey", bodyAs[*Reboot](t, env).CommandKey, "reboot-20240501")
	},
	"reboot-response.xml": func(t *testing.T, env *Envelope, err error) {
		bodyAs[*RebootResponse](t, env)
	},
	"requestdownload-request.xml": func(t *testing.T, env *Envelope, err error) {
		deepEq(t, "body", bodyAs[*RequestDownload](t, env), &RequestDownload{
			FileType:    "1 Firmware Upgrade Image",
			FileTypeArg: []Arg{{Name: "Version", Value: "4.2.3"}, {Name: "Channel", Value: "beta"}},
		})
	},
	"requestdownload-response.xml": func(t *testing.T, env *Envelope, err error) {
		bodyAs[*RequestDownloadResponse](t, env)
	},
	"scheduledownload-request.xml": func(t *testing.T, env *Envelope, err error) {
		m := bodyAs[*ScheduleDownload](t, env)
		eq(t, "CommandKey", m.CommandKey, "fw-night")
		eq(t, "FileSize", m.FileSize, 31457280)
		deepEq(t, "windows", m.TimeWindowList, []TimeWindow{{WindowStart: 3600, WindowEnd: 14400, WindowMode: "3 When Idle", MaxRetries: 2}})
	},
	"scheduledownload-response.xml": func(t *testing.T, env *Envelope, err error) {
		bodyAs[*ScheduleDownloadResponse](t, env)
	},
	"scheduleinform-request.xml": func(t *testing.T, env *Envelope, err error) {
		deepEq(t, "body", bodyAs[*ScheduleInform](t, env), &ScheduleInform{DelaySeconds: 120, CommandKey: "poll-1"})
	},
	"scheduleinform-response.xml": func(t *testing.T, env *Envelope, err error) {
		bodyAs[*ScheduleInformResponse](t, env)
	},
	"setvouchers-request.xml": func(t *testing.T, env *Envelope, err error) {
		deepEq(t, "vouchers", bodyAs[*SetVouchers](t, env).VoucherList, []string{"PHZvdWNoZXIgaWQ9IjEiLz4=", "PHZvdWNoZXIgaWQ9IjIiLz4="})
	},
	"setvouchers-response.xml": func(t *testing.T, env *Envelope, err error) {
		bodyAs[*SetVouchersResponse](t, env)
	},
	"spa-request.xml": func(t *testing.T, env *Envelope, err error) {
		deepEq(t, "list", bodyAs[*SetParameterAttributes](t, env).ParameterList, []SetParameterAttribute{
			{Name: "InternetGatewayDevice.WANDevice.1.WANConnectionDevice.1.WANPPPConnection.1.ExternalIPAddress", NotificationChange: true, Notification: 2},
			{Name: "InternetGatewayDevice.DeviceInfo.SoftwareVersion", AccessListChange: true, AccessList: []string{"Subscriber"}},
		})
	},
	"spa-response.xml": func(t *testing.T, env *Envelope, err error) {
		bodyAs[*SetParameterAttributesResponse](t, env)
	},
	"spv-request.xml": func(t *testing.T, env *Envelope, err error) {
		m := bodyAs[*SetParameterValues](t, env)
		eq(t, "ParameterKey", m.ParameterKey, "cfg-43")
		if len(m.ParameterList) != 5 {
			t.Fatalf("got %d params", len(m.ParameterList))
		}
		deepEq(t, "password", m.ParameterList[3], ParameterValue{Name: "InternetGatewayDevice.ManagementServer.ConnectionRequestPassword", Value: "s3cr<t", Type: TypeString})
	},
	"spv-response.xml": func(t *testing.T, env *Envelope, err error) {
		eq(t, "Status", bodyAs[*SetParameterValuesResponse](t, env).Status, 0)
	},
	"transfercomplete-response.xml": func(t *testing.T, env *Envelope, err error) {
		bodyAs[*TransferCompleteResponse](t, env)
	},
	"transfercomplete.xml": func(t *testing.T, env *Envelope, err error) {
		header(t, env, "4713", ns10)
		deepEq(t, "body", bodyAs[*TransferComplete](t, env), &TransferComplete{
			CommandKey: "fw-4.2.2", StartTime: utc("2024-05-01T08:16:05Z"), CompleteTime: utc("2024-05-01T08:19:51Z"),
		})
	},
	"upload-request.xml": func(t *testing.T, env *Envelope, err error) {
		deepEq(t, "body", bodyAs[*Upload](t, env), &Upload{
			CommandKey: "cfgbackup-1", FileType: "1 Vendor Configuration File",
			URL: "https://fs.example.net/upload/00259E-HG8245H-48575443A1B2C3D4.cfg", Username: "up", Password: "up-pass",
		})
	},
	"upload-response.xml": func(t *testing.T, env *Envelope, err error) {
		deepEq(t, "body", bodyAs[*UploadResponse](t, env), &UploadResponse{
			StartTime: utc("2024-05-01T09:00:00.25Z"), CompleteTime: utc("2024-05-01T10:00:03Z"),
		})
	},
}

func fixtureFiles(t testing.TB) []string {
	files, err := filepath.Glob("testdata/*.xml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	return files
}

func TestDecodeFixtures(t *testing.T) {
	for _, f := range fixtureFiles(t) {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			check, ok := fixtureChecks[name]
			if !ok {
				t.Fatalf("no check for %s: add one to fixtureChecks", name)
			}
			env, err := Decoder{}.DecodeCharset(data, fixtureCharsets[name])
			if !strings.HasPrefix(name, "err-") && err != nil {
				t.Fatalf("Decode: %v", err)
			}
			check(t, env, err)
		})
	}
}

// TestFixturesAllChecked keeps fixtureChecks and testdata in step, and
// requires at least one fixture per message type.
func TestFixturesAllChecked(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range fixtureFiles(t) {
		seen[filepath.Base(f)] = true
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if env, err := Decode(data); err == nil && env.Body != nil {
			seen["method:"+env.Body.Method()] = true
		}
	}
	for name := range fixtureChecks {
		if !seen[name] {
			t.Errorf("fixtureChecks has %s but testdata does not", name)
		}
	}
	for _, m := range methodNames(t) {
		if !seen["method:"+m] {
			t.Errorf("no fixture decodes to %s", m)
		}
	}
}

// methodNames lists the values of every Method* constant in methods.go, read
// from the source so that a message added there without tests fails here.
func methodNames(t testing.TB) []string {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "methods.go", nil, 0)
	if err != nil {
		t.Fatalf("parse methods.go: %v", err)
	}
	var names []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, id := range vs.Names {
				if !strings.HasPrefix(id.Name, "Method") || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok {
					continue
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				names = append(names, v)
			}
		}
	}
	if len(names) < 55 {
		t.Fatalf("found only %d Method constants", len(names))
	}
	return names
}

// roundTripCases holds one populated message per method: every field set
// to a non-zero value where the type allows it, so a field the encoder or
// decoder drops shows up as a difference.
func roundTripCases() map[string]Message {
	t1 := time.Date(2024, 5, 1, 8, 16, 5, 0, time.UTC)
	t2 := time.Date(2024, 5, 1, 8, 19, 51, 250_000_000, time.UTC)
	pvs := []ParameterValue{
		{Name: "Device.WiFi.SSID.1.SSID", Value: " Café & <Bar> \"quoted\" 'x'\r\n\ttab ", Type: TypeString},
		{Name: "Device.DeviceInfo.UpTime", Value: "3605", Type: TypeUnsignedInt},
		{Name: "Device.ManagementServer.PeriodicInformEnable", Value: "1", Type: TypeBoolean},
		{Name: "Device.Time.CurrentLocalTime", Value: "2024-05-01T10:15:02Z", Type: TypeDateTime},
		{Name: "Device.X.Neg", Value: "-5", Type: TypeInt},
		{Name: "Device.X.Long", Value: "-9000000000", Type: TypeLong},
		{Name: "Device.X.ULong", Value: "18446744073709551615", Type: TypeUnsignedLong},
		{Name: "Device.X.B64", Value: "aGk=", Type: TypeBase64},
		{Name: "Device.X.Hex", Value: "0aff", Type: TypeHexBinary},
		{Name: "Device.X.Empty", Value: "", Type: TypeString},
		{Name: "Device.X.Vendor", Value: "v", Type: "xsd:X_VENDOR_type"},
	}
	fault := FaultStruct{Code: 9010, String: "Download failure"}
	op := OpResult{
		UUID: "6ba7b810-9dad-11d1-80b4-00c04fd430c8", DeploymentUnitRef: "Device.SoftwareModules.DeploymentUnit.1",
		Version: "1.2", CurrentState: "Installed", Resolved: true, ExecutionUnitRefList: "Device.SoftwareModules.ExecutionUnit.1",
		StartTime: t1, CompleteTime: t2, Fault: FaultStruct{Code: 9018, String: "corrupt"},
	}
	return map[string]Message{
		MethodGetRPCMethods:                  &GetRPCMethods{},
		MethodGetRPCMethodsResponse:          &GetRPCMethodsResponse{MethodList: []string{"Inform", "GetRPCMethods", "TransferComplete"}},
		MethodSetParameterValues:             &SetParameterValues{ParameterList: pvs, ParameterKey: "pk-1"},
		MethodSetParameterValuesResponse:     &SetParameterValuesResponse{Status: 1},
		MethodGetParameterValues:             &GetParameterValues{ParameterNames: []string{"Device.DeviceInfo.", "Device.ManagementServer.URL"}},
		MethodGetParameterValuesResponse:     &GetParameterValuesResponse{ParameterList: pvs},
		MethodGetParameterNames:              &GetParameterNames{ParameterPath: "Device.WiFi.", NextLevel: true},
		MethodGetParameterNamesResponse:      &GetParameterNamesResponse{ParameterList: []ParameterInfo{{Name: "Device.WiFi.SSID.", Writable: false}, {Name: "Device.WiFi.SSID.1.SSID", Writable: true}}},
		MethodSetParameterAttributes:         &SetParameterAttributes{ParameterList: []SetParameterAttribute{{Name: "Device.A", NotificationChange: true, Notification: 2, AccessListChange: true, AccessList: []string{"Subscriber"}}, {Name: "Device.B", Notification: 1}}},
		MethodSetParameterAttributesResponse: &SetParameterAttributesResponse{},
		MethodGetParameterAttributes:         &GetParameterAttributes{ParameterNames: []string{"Device.A", "Device.B."}},
		MethodGetParameterAttributesResponse: &GetParameterAttributesResponse{ParameterList: []ParameterAttribute{{Name: "Device.A", Notification: 6, AccessList: []string{"Subscriber", "X"}}, {Name: "Device.B"}}},
		MethodAddObject:                      &AddObject{ObjectName: "Device.NAT.PortMapping.", ParameterKey: "pk-2"},
		MethodAddObjectResponse:              &AddObjectResponse{InstanceNumber: 4294967295, Status: 1},
		MethodDeleteObject:                   &DeleteObject{ObjectName: "Device.NAT.PortMapping.3.", ParameterKey: "pk-3"},
		MethodDeleteObjectResponse:           &DeleteObjectResponse{Status: 1},
		MethodReboot:                         &Reboot{CommandKey: "rb-1"},
		MethodRebootResponse:                 &RebootResponse{},
		MethodDownload: &Download{CommandKey: "dl-1", FileType: "1 Firmware Upgrade Image", URL: "http://fs/x?a=1&b=2",
			Username: "u", Password: "p<w>", FileSize: 123456, TargetFileName: "fw.bin", DelaySeconds: 30,
			SuccessURL: "http://ok", FailureURL: "http://fail"},
		MethodDownloadResponse:       &DownloadResponse{Status: 0, StartTime: t1, CompleteTime: t2},
		MethodUpload:                 &Upload{CommandKey: "up-1", FileType: "2 Vendor Log File", URL: "http://fs/up", Username: "u", Password: "p", DelaySeconds: 5},
		MethodUploadResponse:         &UploadResponse{Status: 1, StartTime: t1, CompleteTime: t2},
		MethodFactoryReset:           &FactoryReset{},
		MethodFactoryResetResponse:   &FactoryResetResponse{},
		MethodScheduleInform:         &ScheduleInform{DelaySeconds: 60, CommandKey: "si-1"},
		MethodScheduleInformResponse: &ScheduleInformResponse{},
		MethodScheduleDownload: &ScheduleDownload{CommandKey: "sd-1", FileType: "1 Firmware Upgrade Image", URL: "http://fs/fw",
			Username: "u", Password: "p", FileSize: 99, TargetFileName: "fw", TimeWindowList: []TimeWindow{
				{WindowStart: 0, WindowEnd: 3600, WindowMode: "2 Immediately", UserMessage: "now", MaxRetries: -1},
				{WindowStart: 7200, WindowEnd: 10800, WindowMode: "4 Confirmation Needed", UserMessage: "ok?", MaxRetries: 3},
			}},
		MethodScheduleDownloadResponse:      &ScheduleDownloadResponse{},
		MethodCancelTransfer:                &CancelTransfer{CommandKey: "sd-1"},
		MethodCancelTransferResponse:        &CancelTransferResponse{},
		MethodGetQueuedTransfers:            &GetQueuedTransfers{},
		MethodGetQueuedTransfersResponse:    &GetQueuedTransfersResponse{TransferList: []QueuedTransfer{{CommandKey: "a", State: 1}, {CommandKey: "b", State: 3}}},
		MethodGetAllQueuedTransfers:         &GetAllQueuedTransfers{},
		MethodGetAllQueuedTransfersResponse: &GetAllQueuedTransfersResponse{TransferList: []AllQueuedTransfer{{CommandKey: "a", State: 2, IsDownload: true, FileType: "1 Firmware Upgrade Image", FileSize: 7, TargetFileName: "t"}}},
		MethodChangeDUState: &ChangeDUState{Operations: []DUOperation{
			{Kind: "Install", URL: "http://apps/a.ipk", UUID: "u-1", Username: "u", Password: "p", ExecutionEnvRef: "Device.SoftwareModules.ExecEnv.1"},
			{Kind: "Update", UUID: "u-2", Version: "2.0", URL: "http://apps/b.ipk", Username: "u", Password: "p"},
			{Kind: "Uninstall", UUID: "u-3", Version: "1.0", ExecutionEnvRef: "Device.SoftwareModules.ExecEnv.2"},
		}, CommandKey: "du-1"},
		MethodChangeDUStateResponse: &ChangeDUStateResponse{},
		MethodSetVouchers:           &SetVouchers{VoucherList: []string{"PHY+", "PHc+"}},
		MethodSetVouchersResponse:   &SetVouchersResponse{},
		MethodGetOptions:            &GetOptions{OptionName: "X_OPT"},
		MethodGetOptionsResponse:    &GetOptionsResponse{OptionList: []Option{{OptionName: "A", VoucherSN: 1, State: 2, Mode: 1, StartDate: t1, ExpirationDate: t2, IsTransferable: 1}, {OptionName: "B", StartDate: t1}}},
		MethodInform: &Inform{
			DeviceId:      DeviceID{Manufacturer: "Example & Co", OUI: "A1B2C3", ProductClass: "XG", SerialNumber: "SN1"},
			Event:         []Event{{Code: EventBoot}, {Code: EventMReboot, CommandKey: "rb-1"}},
			MaxEnvelopes:  1,
			CurrentTime:   t2,
			RetryCount:    3,
			ParameterList: pvs,
		},
		MethodInformResponse:                          &InformResponse{MaxEnvelopes: 1},
		MethodTransferComplete:                        &TransferComplete{CommandKey: "dl-1", FaultStruct: fault, StartTime: t1, CompleteTime: t2},
		MethodTransferCompleteResponse:                &TransferCompleteResponse{},
		MethodAutonomousTransferComplete:              &AutonomousTransferComplete{AnnounceURL: "http://a", TransferURL: "http://t", IsDownload: true, FileType: "3 Vendor Configuration File", FileSize: 42, TargetFileName: "cfg", FaultStruct: fault, StartTime: t1, CompleteTime: t2},
		MethodAutonomousTransferCompleteResponse:      &AutonomousTransferCompleteResponse{},
		MethodRequestDownload:                         &RequestDownload{FileType: "1 Firmware Upgrade Image", FileTypeArg: []Arg{{Name: "Version", Value: "1.0"}}},
		MethodRequestDownloadResponse:                 &RequestDownloadResponse{},
		MethodDUStateChangeComplete:                   &DUStateChangeComplete{Results: []OpResult{op, {UUID: "u-2", CurrentState: "Failed"}}, CommandKey: "du-1"},
		MethodDUStateChangeCompleteResponse:           &DUStateChangeCompleteResponse{},
		MethodAutonomousDUStateChangeComplete:         &AutonomousDUStateChangeComplete{Results: []AutonOpResult{{OpResult: op, OperationPerformed: "Install"}}},
		MethodAutonomousDUStateChangeCompleteResponse: &AutonomousDUStateChangeCompleteResponse{},
		MethodKicked:                                  &Kicked{Command: "c", Referer: "r", Arg: "a=1&b=2", Next: "http://n"},
		MethodKickedResponse:                          &KickedResponse{NextURL: "http://next"},
		MethodFault: &Fault{SOAPCode: "Client", SOAPString: "CWMP fault", Code: 9003, String: "Invalid arguments",
			SetParameterValuesFaults: []SetParameterValuesFault{
				{ParameterName: "Device.A", FaultCode: 9007, FaultString: "Invalid parameter value"},
				{ParameterName: "Device.B", FaultCode: 9008, FaultString: "Attempt to set a non-writable parameter"},
			}},
	}
}

func TestRoundTripEveryMethod(t *testing.T) {
	cases := roundTripCases()
	names := methodNames(t)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			msg, ok := cases[name]
			if !ok {
				t.Fatalf("no round-trip case for %s", name)
			}
			if newMessage(name) == nil {
				t.Fatalf("newMessage(%q) = nil", name)
			}
			if msg.Method() != name {
				t.Fatalf("case for %s is a %s", name, msg.Method())
			}
			for _, ns := range []string{ns10, ns12, ns14} {
				in := &Envelope{Namespace: ns, ID: "id-" + name, HasID: true, Body: msg}
				data, err := Encode(in)
				if err != nil {
					t.Fatalf("Encode: %v", err)
				}
				out, err := Decode(data)
				if err != nil {
					t.Fatalf("Decode: %v\n%s", err, data)
				}
				if !reflect.DeepEqual(in, out) {
					t.Fatalf("round trip mismatch\n in: %#v\nout: %#v\nxml: %s", in.Body, out.Body, data)
				}
			}
		})
	}
	if len(cases) != len(names) {
		t.Errorf("%d round-trip cases for %d methods", len(cases), len(names))
	}
}

func TestRoundTripHeaders(t *testing.T) {
	cases := []*Envelope{
		{Namespace: ns12, Body: &InformResponse{MaxEnvelopes: 1}},
		{Namespace: ns10, HasID: true, Body: &InformResponse{MaxEnvelopes: 1}},
		{Namespace: ns12, ID: "a&b", HasID: true, HoldRequests: true, UseCWMPVersion: "1.4", Body: &InformResponse{MaxEnvelopes: 1}},
		{Namespace: ns12, ID: "7", HasID: true, NoMoreRequests: true, SessionTimeout: 60, SupportedCWMPVersions: "1.0,1.4", Body: &Inform{}},
		{Namespace: ns12, ID: "8", HasID: true},
		{Namespace: "urn:dslforum-org:cwmp-1-3", ID: "9", HasID: true, Body: &Reboot{}},
	}
	for i, in := range cases {
		data, err := Encode(in)
		if err != nil {
			t.Fatalf("case %d: Encode: %v", i, err)
		}
		out, err := Decode(data)
		if err != nil {
			t.Fatalf("case %d: Decode: %v\n%s", i, err, data)
		}
		if !reflect.DeepEqual(in, out) {
			t.Errorf("case %d:\n in: %#v\nout: %#v\nxml: %s", i, in, out, data)
		}
	}
}

func TestEncodeShape(t *testing.T) {
	t.Run("nil envelope", func(t *testing.T) {
		if _, err := Encode(nil); err == nil {
			t.Fatal("Encode(nil) succeeded")
		}
	})
	t.Run("nil typed body", func(t *testing.T) {
		if _, err := Encode(&Envelope{Body: (*Inform)(nil)}); err == nil {
			t.Fatal("Encode of a nil *Inform body succeeded")
		}
	})
	t.Run("no header when empty, default namespace", func(t *testing.T) {
		b, err := Encode(&Envelope{Body: &FactoryReset{}})
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if strings.Contains(s, "Header") {
			t.Errorf("unexpected Header: %s", s)
		}
		if !strings.Contains(s, `xmlns:cwmp="urn:dslforum-org:cwmp-1-0"`) {
			t.Errorf("default namespace missing: %s", s)
		}
		if !strings.Contains(s, "<soap-env:Body><cwmp:FactoryReset></cwmp:FactoryReset></soap-env:Body>") {
			t.Errorf("body: %s", s)
		}
	})
	t.Run("header elements", func(t *testing.T) {
		b, _ := Encode(&Envelope{ID: "1", HoldRequests: true, UseCWMPVersion: "1.4", SessionTimeout: 30, SupportedCWMPVersions: "1.4"})
		for _, want := range []string{
			`<cwmp:ID soap-env:mustUnderstand="1">1</cwmp:ID>`,
			`<cwmp:HoldRequests soap-env:mustUnderstand="1">true</cwmp:HoldRequests>`,
			`<cwmp:UseCWMPVersion soap-env:mustUnderstand="1">1.4</cwmp:UseCWMPVersion>`,
			`<cwmp:SupportedCWMPVersions soap-env:mustUnderstand="0">1.4</cwmp:SupportedCWMPVersions>`,
			`<cwmp:SessionTimeout soap-env:mustUnderstand="0">30</cwmp:SessionTimeout>`,
		} {
			if !bytes.Contains(b, []byte(want)) {
				t.Errorf("missing %s in %s", want, b)
			}
		}
	})
	t.Run("empty ID kept", func(t *testing.T) {
		b, _ := Encode(&Envelope{HasID: true})
		if !bytes.Contains(b, []byte(`<cwmp:ID soap-env:mustUnderstand="1"></cwmp:ID>`)) {
			t.Errorf("empty ID not written: %s", b)
		}
	})
	t.Run("download writes all ten elements", func(t *testing.T) {
		b, _ := Encode(&Envelope{Body: &Download{}})
		want := "<cwmp:Download><CommandKey></CommandKey><FileType></FileType><URL></URL><Username></Username>" +
			"<Password></Password><FileSize>0</FileSize><TargetFileName></TargetFileName><DelaySeconds>0</DelaySeconds>" +
			"<SuccessURL></SuccessURL><FailureURL></FailureURL></cwmp:Download>"
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("got %s", b)
		}
	})
	t.Run("arrays, types, escaping, booleans", func(t *testing.T) {
		b, _ := Encode(&Envelope{Body: &SetParameterValues{ParameterList: []ParameterValue{
			{Name: "A&B", Value: "<x>", Type: "int"}, {Name: "C", Value: "v"},
		}}})
		for _, want := range []string{
			`<ParameterList soap-enc:arrayType="cwmp:ParameterValueStruct[2]">`,
			`<ParameterValueStruct><Name>A&amp;B</Name><Value xsi:type="xsd:int">&lt;x&gt;</Value></ParameterValueStruct>`,
			`<Value xsi:type="xsd:string">v</Value>`,
			`<ParameterKey></ParameterKey>`,
		} {
			if !bytes.Contains(b, []byte(want)) {
				t.Errorf("missing %s in %s", want, b)
			}
		}
		b, _ = Encode(&Envelope{Body: &GetParameterNames{ParameterPath: "Device.", NextLevel: true}})
		if !bytes.Contains(b, []byte("<NextLevel>1</NextLevel>")) {
			t.Errorf("NextLevel: %s", b)
		}
		b, _ = Encode(&Envelope{Body: &GetParameterValues{ParameterNames: []string{"a", "b", "c"}}})
		if !bytes.Contains(b, []byte(`<ParameterNames soap-enc:arrayType="xsd:string[3]"><string>a</string>`)) {
			t.Errorf("ParameterNames: %s", b)
		}
	})
	t.Run("fault shape", func(t *testing.T) {
		b, _ := Encode(&Envelope{Body: NewFault(FaultACSMethodNotSupported, "")})
		want := "<soap-env:Body><soap-env:Fault><faultcode>Server</faultcode><faultstring>CWMP fault</faultstring>" +
			"<detail><cwmp:Fault><FaultCode>8000</FaultCode><FaultString>Method not supported</FaultString></cwmp:Fault>" +
			"</detail></soap-env:Fault></soap-env:Body>"
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("got %s", b)
		}
	})
	t.Run("zero time is Unknown Time", func(t *testing.T) {
		b, _ := Encode(&Envelope{Body: &DownloadResponse{Status: 1}})
		if !bytes.Contains(b, []byte("<StartTime>0001-01-01T00:00:00Z</StartTime>")) {
			t.Errorf("got %s", b)
		}
	})
}

func TestAppendEscaped(t *testing.T) {
	cases := []struct {
		in        string
		text, att string
	}{
		{"plain", "plain", "plain"},
		{`<a & "b" 'c'>`, "&lt;a &amp; &#34;b&#34; &#39;c&#39;&gt;", "&lt;a &amp; &#34;b&#34; &#39;c&#39;&gt;"},
		{"a\r\nb\tc", "a&#xD;\nb\tc", "a&#xD;&#xA;b&#x9;c"},
		{"bell\x07", "bell\uFFFD", "bell\uFFFD"},
		{"bad\xffutf8", "bad\uFFFDutf8", "bad\uFFFDutf8"},
		{"é€😀", "é€😀", "é€😀"},
		{"\uFFFE", "\uFFFD", "\uFFFD"},
	}
	for _, c := range cases {
		if got := string(appendEscaped(nil, c.in, false)); got != c.text {
			t.Errorf("text(%q) = %q, want %q", c.in, got, c.text)
		}
		if got := string(appendEscaped(nil, c.in, true)); got != c.att {
			t.Errorf("attr(%q) = %q, want %q", c.in, got, c.att)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	env := func(body string) string {
		return `<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:cwmp="urn:dslforum-org:cwmp-1-0">` +
			`<soap-env:Header><cwmp:ID soap-env:mustUnderstand="1">e-1</cwmp:ID></soap-env:Header><soap-env:Body>` + body + `</soap-env:Body></soap-env:Envelope>`
	}
	deep := "<a>" + strings.Repeat("<b>", 40) + strings.Repeat("</b>", 40) + "</a>"
	cases := []struct {
		name string
		data string
		dec  Decoder
		want error
	}{
		{"empty", "", Decoder{}, ErrMalformed},
		{"whitespace only", " \r\n\t", Decoder{}, ErrMalformed},
		{"bom only", "\xef\xbb\xbf", Decoder{}, ErrMalformed},
		{"garbage", "\x00\x01\x02garbage\xff", Decoder{}, ErrMalformed},
		{"plain text", "hello", Decoder{}, ErrMalformed},
		{"json", `{"Inform":1}`, Decoder{}, ErrMalformed},
		{"truncated", env("<cwmp:Inform><DeviceId>")[:120], Decoder{}, ErrMalformed},
		{"truncated inside rpc", strings.TrimSuffix(env("<cwmp:Reboot><CommandKey>x</CommandKey></cwmp:Reboot>"), "</soap-env:Envelope>"), Decoder{}, ErrMalformed},
		{"mismatched tags", env("<cwmp:Reboot></cwmp:Rebot>"), Decoder{}, ErrMalformed},
		{"wrong root", `<html><body>hi</body></html>`, Decoder{}, ErrNotEnvelope},
		{"wrong root soap 1.2 body", `<Body/>`, Decoder{}, ErrNotEnvelope},
		{"no body", `<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/"><soap-env:Header/></soap-env:Envelope>`, Decoder{}, ErrMalformed},
		{"doctype", `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>` + env("<cwmp:Reboot><CommandKey>&a;</CommandKey></cwmp:Reboot>"), Decoder{}, ErrMalformed},
		{"billion laughs", `<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>`, Decoder{}, ErrMalformed},
		{"entity without doctype", `<!ENTITY x "y">` + env(""), Decoder{}, ErrMalformed},
		{"doctype after comment", `<!-- <!ok> --><!DOCTYPE x>` + env(""), Decoder{}, ErrMalformed},
		{"too large", env("<cwmp:Reboot/>"), Decoder{MaxSize: 64}, ErrTooLarge},
		{"too large default", "<" + strings.Repeat("a", DefaultMaxEnvelopeSize), Decoder{}, ErrTooLarge},
		{"too deep", env(deep), Decoder{}, ErrTooDeep},
		{"too deep custom", env("<cwmp:Reboot><CommandKey>x</CommandKey></cwmp:Reboot>"), Decoder{MaxDepth: 3}, ErrTooDeep},
		{"unknown method", env("<cwmp:X_Frob/>"), Decoder{}, ErrUnknownMethod},
		{"bad int", env("<cwmp:AddObjectResponse><InstanceNumber>three</InstanceNumber></cwmp:AddObjectResponse>"), Decoder{}, ErrMalformed},
		{"negative uint", env("<cwmp:ScheduleInform><DelaySeconds>-1</DelaySeconds></cwmp:ScheduleInform>"), Decoder{}, ErrMalformed},
		{"int overflow", env("<cwmp:SetParameterValuesResponse><Status>99999999999</Status></cwmp:SetParameterValuesResponse>"), Decoder{}, ErrMalformed},
		{"bad bool", env("<cwmp:GetParameterNames><NextLevel>yes</NextLevel></cwmp:GetParameterNames>"), Decoder{}, ErrMalformed},
		{"bad fault code", env("<soap-env:Fault><detail><cwmp:Fault><FaultCode>x</FaultCode></cwmp:Fault></detail></soap-env:Fault>"), Decoder{}, ErrMalformed},
		{"unsupported charset", `<?xml version="1.0" encoding="EBCDIC-CP-US"?>` + env(""), Decoder{}, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.dec.Decode([]byte(c.data))
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if c.want == ErrUnknownMethod {
				if got == nil || got.ID != "e-1" || !got.HasID || got.Namespace != ns10 {
					t.Fatalf("unknown method envelope = %+v, want ID e-1 and namespace", got)
				}
				return
			}
			if got != nil {
				t.Errorf("got envelope %+v with error", got)
			}
		})
	}
}

func TestDecodeLimitsAccept(t *testing.T) {
	data, err := os.ReadFile("testdata/gpv-response-300.xml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (Decoder{MaxSize: len(data), MaxDepth: 6}).Decode(data); err != nil {
		t.Fatalf("at the limits: %v", err)
	}
	if _, err := (Decoder{MaxSize: len(data) - 1}).Decode(data); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("one byte over: %v", err)
	}
	if _, err := (Decoder{MaxDepth: 5}).Decode(data); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("one level over: %v", err)
	}
}

func TestDecodeTolerance(t *testing.T) {
	wrap := func(rpc string) []byte {
		return []byte(`<E:Envelope xmlns:E="http://schemas.xmlsoap.org/soap/envelope/" xmlns:cwmp="urn:dslforum-org:cwmp-1-0"><E:Body>` + rpc + `</E:Body></E:Envelope>`)
	}
	t.Run("booleans any case", func(t *testing.T) {
		for in, want := range map[string]bool{"true": true, "TRUE": true, " True ": true, "1": true, "false": false, "FaLsE": false, "0": false, "": false} {
			env, err := Decode(wrap("<cwmp:GetParameterNames><NextLevel>" + in + "</NextLevel></cwmp:GetParameterNames>"))
			if err != nil {
				t.Fatalf("%q: %v", in, err)
			}
			eq(t, "NextLevel("+in+")", env.Body.(*GetParameterNames).NextLevel, want)
		}
	})
	t.Run("ints with whitespace", func(t *testing.T) {
		env, err := Decode(wrap("<cwmp:AddObjectResponse><InstanceNumber>\n\t 12 \n</InstanceNumber><Status> 1 </Status></cwmp:AddObjectResponse>"))
		if err != nil {
			t.Fatal(err)
		}
		deepEq(t, "body", env.Body, &AddObjectResponse{InstanceNumber: 12, Status: 1})
	})
	t.Run("times", func(t *testing.T) {
		for in, want := range map[string]time.Time{
			"2024-05-01T10:15:02Z":             utc("2024-05-01T10:15:02Z"),
			"2024-05-01T10:15:02.5Z":           utc("2024-05-01T10:15:02.5Z"),
			"2024-05-01T10:15:02+02:00":        utc("2024-05-01T08:15:02Z"),
			"2024-05-01T10:15:02.123456-05:00": utc("2024-05-01T15:15:02.123456Z"),
			"2024-05-01T10:15:02":              utc("2024-05-01T10:15:02Z"),
			"2024-05-01T10:15:02.75":           utc("2024-05-01T10:15:02.75Z"),
			"0001-01-01T00:00:00Z":             {},
			"0001-01-01T00:00:00":              {},
			"garbage":                          {},
			"":                                 {},
			"9999-12-31T23:59:59-10:00":        {}, // year 10000 in UTC: unrepresentable
		} {
			env, err := Decode(wrap("<cwmp:DownloadResponse><StartTime>" + in + "</StartTime></cwmp:DownloadResponse>"))
			if err != nil {
				t.Fatalf("%q: %v", in, err)
			}
			got := env.Body.(*DownloadResponse).StartTime
			if !reflect.DeepEqual(got, want) {
				t.Errorf("StartTime(%q) = %#v, want %#v", in, got, want)
			}
		}
	})
	t.Run("unqualified rpc falls back to header namespace", func(t *testing.T) {
		env, err := Decode([]byte(`<Envelope><Header><c:ID xmlns:c="urn:dslforum-org:cwmp-1-3">z</c:ID></Header><Body><Reboot/></Body></Envelope>`))
		if err != nil {
			t.Fatal(err)
		}
		header(t, env, "z", "urn:dslforum-org:cwmp-1-3")
		bodyAs[*Reboot](t, env)
	})
	t.Run("non cwmp namespace is not reported", func(t *testing.T) {
		env, err := Decode([]byte(`<Envelope xmlns:x="urn:example"><Body><x:Reboot/></Body></Envelope>`))
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "Namespace", env.Namespace, "")
	})
	t.Run("bare ampersand", func(t *testing.T) {
		env, err := Decode(wrap("<cwmp:Reboot><CommandKey>a & b</CommandKey></cwmp:Reboot>"))
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "CommandKey", env.Body.(*Reboot).CommandKey, "a & b")
	})
	t.Run("CDATA value kept", func(t *testing.T) {
		env, err := Decode(wrap(`<cwmp:GetParameterValuesResponse><ParameterList><P><Name>n</Name><Value><![CDATA[<x> & ]]></Value></P></ParameterList></cwmp:GetParameterValuesResponse>`))
		if err != nil {
			t.Fatal(err)
		}
		deepEq(t, "params", env.Body.(*GetParameterValuesResponse).ParameterList, []ParameterValue{{Name: "n", Value: "<x> & ", Type: TypeString}})
	})
	t.Run("first body element wins", func(t *testing.T) {
		env, err := Decode(wrap("<cwmp:Reboot/><cwmp:FactoryReset/>"))
		if err != nil {
			t.Fatal(err)
		}
		bodyAs[*Reboot](t, env)
	})
}

func TestParseBool(t *testing.T) {
	for in, want := range map[string]bool{"true": true, "True": true, "TRUE": true, " 1 ": true, "false": false, "FALSE": false, "0": false} {
		got, err := ParseBool(in)
		if err != nil || got != want {
			t.Errorf("ParseBool(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "yes", "2", "t", "truee"} {
		if _, err := ParseBool(in); !errors.Is(err, ErrInvalidValue) {
			t.Errorf("ParseBool(%q) err = %v", in, err)
		}
	}
	eq(t, "FormatBool(true)", FormatBool(true), "1")
	eq(t, "FormatBool(false)", FormatBool(false), "0")
}

func TestNormalizeType(t *testing.T) {
	for in, want := range map[string]string{
		"":                 TypeString,
		"xsd:string":       TypeString,
		"string":           TypeString,
		"xs:int":           TypeInt,
		"int":              TypeInt,
		" xsd:int ":        TypeInt,
		"xsd:UnsignedInt":  TypeUnsignedInt,
		"soap-enc:base64":  TypeBase64,
		"SOAP-ENC:base64":  TypeBase64,
		"xsd:base64Binary": TypeBase64,
		"xsd:boolean":      TypeBoolean,
		"dateTime":         TypeDateTime,
		"xsd:hexBinary":    TypeHexBinary,
		"xsd:long":         TypeLong,
		"xsd:unsignedLong": TypeUnsignedLong,
		"cwmp:X_VENDOR":    "xsd:X_VENDOR",
		"xsd:":             TypeString,
	} {
		got := NormalizeType(in)
		eq(t, "NormalizeType("+in+")", got, want)
		eq(t, "idempotent("+in+")", NormalizeType(got), got)
	}
}

func TestParameterValueAccessors(t *testing.T) {
	p := ParameterValue{Name: "n", Value: " 42 "}
	if v, err := p.Int(); err != nil || v != 42 {
		t.Errorf("Int = %v, %v", v, err)
	}
	if v, err := p.Uint(); err != nil || v != 42 {
		t.Errorf("Uint = %v, %v", v, err)
	}
	p.Value = "-1"
	if _, err := p.Uint(); !errors.Is(err, ErrInvalidValue) {
		t.Errorf("Uint(-1) err = %v", err)
	}
	if v, err := p.Int(); err != nil || v != -1 {
		t.Errorf("Int(-1) = %v, %v", v, err)
	}
	p.Value = "x"
	if _, err := p.Int(); !errors.Is(err, ErrInvalidValue) {
		t.Errorf("Int(x) err = %v", err)
	}
	if _, err := p.Bool(); !errors.Is(err, ErrInvalidValue) {
		t.Errorf("Bool(x) err = %v", err)
	}
	if _, err := p.Time(); !errors.Is(err, ErrInvalidValue) {
		t.Errorf("Time(x) err = %v", err)
	}
	p.Value = "TRUE"
	if b, err := p.Bool(); err != nil || !b {
		t.Errorf("Bool(TRUE) = %v, %v", b, err)
	}
	p.Value = "2024-05-01T10:15:02.5+02:00"
	if tm, err := p.Time(); err != nil || !tm.Equal(utc("2024-05-01T08:15:02.5Z")) || tm.Location() != time.UTC {
		t.Errorf("Time = %v, %v", tm, err)
	}
	p.Value = "0001-01-01T00:00:00Z"
	if tm, err := p.Time(); err != nil || !tm.IsZero() {
		t.Errorf("Unknown Time = %v, %v", tm, err)
	}
}

func TestValidateValue(t *testing.T) {
	ok := []struct{ typ, v string }{
		{TypeString, "anything <at> all"},
		{"", "untyped"},
		{TypeInt, "-2147483648"}, {TypeInt, " 2147483647 "},
		{TypeUnsignedInt, "4294967295"}, {TypeUnsignedInt, "0"},
		{TypeLong, "-9223372036854775808"}, {TypeUnsignedLong, "18446744073709551615"},
		{TypeBoolean, "true"}, {TypeBoolean, "0"}, {"boolean", "FALSE"},
		{TypeDateTime, "2024-05-01T10:15:02Z"}, {TypeDateTime, "0001-01-01T00:00:00Z"}, {TypeDateTime, "2024-05-01T10:15:02"},
		{TypeBase64, "aGVsbG8="}, {TypeBase64, ""}, {TypeBase64, "aGVs\nbG8="}, {"soap-enc:base64", "AAEC"},
		{TypeHexBinary, "0aFF"}, {TypeHexBinary, ""},
		{"xsd:X_VENDOR", "whatever"},
	}
	for _, c := range ok {
		if err := ValidateValue(c.typ, c.v); err != nil {
			t.Errorf("ValidateValue(%q, %q) = %v", c.typ, c.v, err)
		}
	}
	bad := []struct{ typ, v string }{
		{TypeInt, "2147483648"}, {TypeInt, "1.5"}, {TypeInt, ""}, {"xs:int", "abc"},
		{TypeUnsignedInt, "-1"}, {TypeUnsignedInt, "4294967296"},
		{TypeLong, "9223372036854775808"}, {TypeUnsignedLong, "-1"},
		{TypeBoolean, "yes"}, {TypeBoolean, ""},
		{TypeDateTime, "yesterday"}, {TypeDateTime, "2024-13-01T00:00:00Z"},
		{TypeBase64, "!!!"}, {TypeBase64, "abc"},
		{TypeHexBinary, "abc"}, {TypeHexBinary, "zz"},
	}
	for _, c := range bad {
		if err := ValidateValue(c.typ, c.v); !errors.Is(err, ErrInvalidValue) {
			t.Errorf("ValidateValue(%q, %q) = %v, want ErrInvalidValue", c.typ, c.v, err)
		}
	}
}

func TestDecodeNamespaceAndCharset(t *testing.T) {
	doc := func(decl, ns, rpc string) []byte {
		return []byte(decl + `<Envelope xmlns:c="` + ns + `"><Body>` + rpc + `</Body></Envelope>`)
	}
	cases := []struct {
		name, decl, ns string
		wantNS         string
	}{
		{"cwmp-1-1", "", ns11, ns11},
		{"cwmp-1-10", "", "urn:dslforum-org:cwmp-1-10", "urn:dslforum-org:cwmp-1-10"},
		{"not digits", "", "urn:dslforum-org:cwmp-1-x", ""},
		{"no version", "", "urn:dslforum-org:cwmp-1-", ""},
		{"other urn", "", "urn:example:cwmp-1-0", ""},
		{"utf8 label", `<?xml version="1.0" encoding="utf8"?>`, ns10, ns10},
		{"us-ascii", `<?xml version="1.0" encoding="US-ASCII"?>`, ns10, ns10},
		{"latin1 label", `<?xml version="1.0" encoding="latin1"?>`, ns10, ns10},
	}
	for _, c := range cases {
		env, err := Decode(doc(c.decl, c.ns, "<c:Reboot><CommandKey>k</CommandKey></c:Reboot>"))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		eq(t, c.name+" Namespace", env.Namespace, c.wantNS)
		eq(t, c.name+" CommandKey", bodyAs[*Reboot](t, env).CommandKey, "k")
	}
}

func TestRoundTripDUOperationKinds(t *testing.T) {
	in := &Envelope{Namespace: ns12, ID: "du", HasID: true, Body: &ChangeDUState{Operations: []DUOperation{
		{Kind: "X_ACME_Restart", UUID: "u-1", ExecutionEnvRef: "ee"},
		{URL: "http://apps/untyped.ipk", Version: "1"},
	}}}
	data, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`<Operations xsi:type="cwmp:X_ACME_RestartOpStruct"><UUID>u-1</UUID><ExecutionEnvRef>ee</ExecutionEnvRef></Operations>`)) {
		t.Errorf("vendor op: %s", data)
	}
	out, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	deepEq(t, "envelope", out, in)
}

// TestDecodeEnvelopeNamespace: an Envelope or Body qualified with a
// namespace other than SOAP 1.1's is not CWMP (ErrNotEnvelope); any prefix
// bound to SOAP 1.1, an unqualified envelope, and every CWMP namespace
// 1.0–1.4 are accepted.
func TestDecodeEnvelopeNamespace(t *testing.T) {
	doc := func(envNS, bodyNS, cwmpNS string) []byte {
		return []byte(`<e:Envelope xmlns:e="` + envNS + `" xmlns:b="` + bodyNS + `" xmlns:c="` + cwmpNS + `">` +
			`<e:Header><c:ID>1</c:ID></e:Header><b:Body><c:Reboot/></b:Body></e:Envelope>`)
	}
	for _, tt := range []struct {
		name    string
		doc     []byte
		wantErr error
		wantNS  string
	}{
		{"soap 1.1, cwmp 1.0", doc(SOAPEnvNS, SOAPEnvNS, NS10), nil, NS10},
		{"soap 1.1, cwmp 1.4", doc(SOAPEnvNS, SOAPEnvNS, NS14), nil, NS14},
		{"unqualified", []byte(`<Envelope><Body><c:Reboot xmlns:c="` + NS12 + `"/></Body></Envelope>`), nil, NS12},
		{"default namespace", []byte(`<Envelope xmlns="` + SOAPEnvNS + `"><Body><c:Reboot xmlns:c="` + NS11 + `"/></Body></Envelope>`), nil, NS11},
		{"soap 1.2 envelope", doc("http://www.w3.org/2003/05/soap-envelope", SOAPEnvNS, NS10), ErrNotEnvelope, ""},
		{"foreign envelope", doc("urn:evil", SOAPEnvNS, NS10), ErrNotEnvelope, ""},
		{"foreign default namespace", []byte(`<Envelope xmlns="urn:evil"><Body><c:Reboot xmlns:c="` + NS10 + `"/></Body></Envelope>`), ErrNotEnvelope, ""},
		{"foreign body", doc(SOAPEnvNS, "urn:evil", NS10), ErrNotEnvelope, ""},
	} {
		env, err := Decode(tt.doc)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) || env != nil {
				t.Errorf("%s: %v, want %v", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || env.Namespace != tt.wantNS {
			t.Errorf("%s: %+v, %v; want namespace %s", tt.name, env, err, tt.wantNS)
		}
	}
}
