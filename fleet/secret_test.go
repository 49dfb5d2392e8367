package fleet

import (
	"slices"
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

func TestRedactTask(t *testing.T) {
	const psk = "Device.WiFi.AccessPoint.1.Security.KeyPassphrase"
	orig := &Task{
		ID: "t1", Name: TaskSetParameterValues, Password: "pw",
		ParameterValues: []ParameterValue{{Name: "Device.WiFi.SSID.1.SSID", Value: "home"}, {Name: psk, Value: "hunter2"}},
		Result:          &TaskResult{ParameterValues: []ParameterValue{{Name: psk, Value: "hunter2"}}},
	}
	shown, redacted := RedactTask(orig)
	if shown.ParameterValues[1].Value != "" || shown.Result.ParameterValues[0].Value != "" || shown.Password != "" {
		t.Errorf("secrets shown: %+v", shown)
	}
	if shown.ParameterValues[0].Value != "home" {
		t.Errorf("a plain value was hidden: %+v", shown.ParameterValues)
	}
	if !slices.Equal(redacted, []string{psk, "password"}) {
		t.Errorf("redacted = %q", redacted)
	}
	if orig.ParameterValues[1].Value != "hunter2" || orig.Result.ParameterValues[0].Value != "hunter2" || orig.Password != "pw" {
		t.Errorf("the stored task changed: %+v", orig)
	}
	if s, r := RedactTask(&Task{ID: "t2"}); s.ID != "t2" || r != nil {
		t.Errorf("nothing to hide: %+v %q", s, r)
	}
}
