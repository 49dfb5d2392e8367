package fleet

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestIsSecretParameter(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"InternetGatewayDevice.ManagementServer.Password", true},
		{"InternetGatewayDevice.ManagementServer.ConnectionRequestPassword", true},
		{"Device.ManagementServer.ConnectionRequestPassword", true},
		{"InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.KeyPassphrase", true},
		{"InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.PreSharedKey.1.PreSharedKey", true},
		{"InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.WEPKey.2.WEPKey", true},
		{"Device.WiFi.AccessPoint.1.Security.KeyPassphrase", true},
		{"Device.WiFi.AccessPoint.1.Security.PreSharedKey", true},
		{"Device.WiFi.AccessPoint.1.Security.X_ACME_PSK", true},
		{"Device.WiFi.AccessPoint.1.Security.RadiusSecret", true},
		{"Device.Users.User.1.Password", true},
		{"InternetGatewayDevice.X_ACME_Admin.X_ACME_WebPassword", true},
		{"Device.PPP.Interface.1.Password", true},
		// Not secrets.
		{"InternetGatewayDevice.ManagementServer.ConnectionRequestUsername", false},
		{"InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID", false},
		{"InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.WEPKeyIndex", false},
		{"Device.WiFi.AccessPoint.1.Security.ModeEnabled", false},
		{"Device.DeviceInfo.ProvisioningCode", false},
		{"Device.Hosts.Host.1.HostKey", false}, // "Key" outside Wi-Fi/Security
		{"Device.Users.User.1.", false},
		{"InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.PreSharedKey.", false},
		{"", false},
	}
	for _, tc := range tests {
		if got := IsSecretParameter(tc.path); got != tc.want {
			t.Errorf("IsSecretParameter(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
}

// TestPublicTask: secret parameter values and the transfer password are
// hidden and listed, in the task and its result; the stored task keeps them.
func TestPublicTask(t *testing.T) {
	const psk = "Device.WiFi.AccessPoint.1.Security.KeyPassphrase"
	stored := &Task{ID: "t1", Device: "d1", Name: TaskSetParameterValues, Status: StatusDone,
		ParameterValues: []ParameterValue{{Name: "Device.WiFi.SSID.1.SSID", Value: "home"}, {Name: psk, Value: "hunter2"}},
		Result:          &TaskResult{ParameterValues: []ParameterValue{{Name: psk, Value: "hunter2"}}},
		Password:        "ftp-pass"}
	v := PublicTask(stored)
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "hunter2") || strings.Contains(string(b), "ftp-pass") {
		t.Fatalf("secret shown: %s", b)
	}
	if !slices.Equal(v.Redacted, []string{psk, RedactedPassword}) || v.ParameterValues[0].Value != "home" {
		t.Fatalf("view: %s", b)
	}
	if stored.ParameterValues[1].Value != "hunter2" || stored.Result.ParameterValues[0].Value != "hunter2" || stored.Password != "ftp-pass" {
		t.Fatalf("PublicTask changed the stored task: %+v", stored)
	}
	if plain := PublicTask(&Task{ID: "t2", Name: TaskReboot}); plain.Redacted != nil {
		t.Fatalf("nothing to hide, yet %v", plain.Redacted)
	}
	if got := PublicTasks(nil); got == nil {
		t.Fatal("PublicTasks(nil) must be an empty list, not null")
	}
}

func TestPublicParameters(t *testing.T) {
	const pw = "Device.ManagementServer.ConnectionRequestPassword"
	tree := PublicParameters(map[string]Parameter{
		pw:                         {Value: "s3cret", Type: "xsd:string"},
		"Device.DeviceInfo.UpTime": {Value: "5", Type: "xsd:unsignedInt"},
		"Device.ManagementServer.": {Object: true},
	})
	if p := tree[pw]; p.Value != "" || !p.Secret {
		t.Errorf("%s: %+v", pw, p)
	}
	if p := tree["Device.DeviceInfo.UpTime"]; p.Value != "5" || p.Secret {
		t.Errorf("uptime: %+v", p)
	}
	if PublicParameters(nil) == nil {
		t.Error("a device without parameters shows {}, not null")
	}
}

// TestHideSecrets: a CPE's fault text that quotes a secret it refused is
// kept without it.
func TestHideSecrets(t *testing.T) {
	const psk = "Device.WiFi.AccessPoint.1.Security.PreSharedKey"
	pvs := []ParameterValue{{Name: "Device.WiFi.SSID.1.SSID", Value: "home"}, {Name: psk, Value: "hunter2"}, {Name: "Device.Users.User.1.Password", Value: ""}}
	if got := SecretValues(pvs); !slices.Equal(got, []string{"hunter2"}) {
		t.Fatalf("SecretValues = %q, want only the PSK's (the SSID is no secret, an empty value hides nothing)", got)
	}
	tests := []struct {
		name, text string
		secrets    []string
		want       string
	}{
		{"quoted", `value "hunter2" is not a valid xsd:hexBinary`, []string{"hunter2"}, `value "********" is not a valid xsd:hexBinary`},
		{"every occurrence", "hunter2 hunter2", []string{"hunter2"}, "******** ********"},
		{"longest first", `"hunter2-long" and "hunter2"`, []string{"hunter2", "hunter2-long"}, `"********" and "********"`},
		{"no secret", "Invalid parameter type", nil, "Invalid parameter type"},
		{"empty secret", "Invalid parameter type", []string{""}, "Invalid parameter type"},
		{"not quoted", "Invalid parameter type", []string{"hunter2"}, "Invalid parameter type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := HideSecrets(tc.text, tc.secrets...); got != tc.want {
				t.Errorf("HideSecrets(%q, %q) = %q, want %q", tc.text, tc.secrets, got, tc.want)
			}
		})
	}
}
