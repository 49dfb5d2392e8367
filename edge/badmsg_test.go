package edge

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestRedactSecrets(t *testing.T) {
	for _, tt := range []struct{ name, in, want string }{
		{"secret parameter value",
			`<P><Name>InternetGatewayDevice.ManagementServer.Password</Name><Value xsi:type="xsd:string">s3cret</Value></P><P><Name>X.SSID</Name><Value>open</Value></P>`,
			`<P><Name>InternetGatewayDevice.ManagementServer.Password</Name><Value xsi:type="xsd:string">********</Value></P><P><Name>X.SSID</Name><Value>open</Value></P>`},
		{"wifi key with prefixes and CDATA",
			`<c:Name> Device.WiFi.AccessPoint.1.Security.KeyPassphrase </c:Name><c:Value><![CDATA[a<b]]></c:Value>`,
			`<c:Name> Device.WiFi.AccessPoint.1.Security.KeyPassphrase </c:Name><c:Value>********</c:Value>`},
		{"password element", `<Download><Username>u</Username><Password>pw</Password></Download>`, `<Download><Username>u</Username><Password>********</Password></Download>`},
		{"cut off inside the value", `<Name>A.ConnectionRequestPassword</Name><Value>hunt`, `<Name>A.ConnectionRequestPassword</Name><Value>********`},
		{"empty value stays empty", `<Name>A.Password</Name><Value></Value><Name>B</Name><Value>x</Value>`, `<Name>A.Password</Name><Value></Value><Name>B</Name><Value>x</Value>`},
		{"a non-secret name resets", `<Name>A.Password</Name><Name>B.Other</Name><Value>keep</Value>`, `<Name>A.Password</Name><Name>B.Other</Name><Value>keep</Value>`},
		{"nothing secret", `<a>b</a>`, `<a>b</a>`},
	} {
		if got := string(redactSecrets([]byte(tt.in))); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
	}
}

func TestSniffDeviceID(t *testing.T) {
	for in, want := range map[string]string{
		`<cwmp:Inform><DeviceId><OUI> A1B2C3 </OUI><ProductClass>Box</ProductClass><SerialNumber>S1</SerialNumber>`: "A1B2C3-Box-S1",
		`<Inform><DeviceId><OUI>A1B2C3</OUI><SerialNumber>S1</SerialNumber><broken`:                                 "A1B2C3-S1",
		`<Inform><DeviceId><OUI>A1B2C3</OUI>`:                                                                       "",
		`<Inform><DeviceId><OUI>` + strings.Repeat("x", 65) + `</OUI><SerialNumber>S</SerialNumber>`:                "",
	} {
		if got := sniffDeviceID([]byte(in)); got != want {
			t.Errorf("sniffDeviceID(%.60q) = %q, want %q", in, got, want)
		}
	}
}

// TestBadMessagesBounded: the store keeps at most its maximum of devices
// (the oldest forgotten) and 16 KiB of each message.
func TestBadMessagesBounded(t *testing.T) {
	b := newBadMessages(quietLog)
	b.max = 8
	now := time.Now()
	big := []byte(strings.Repeat("<a>x</a>", 4<<10))
	for i := range 20 {
		id := "dev-" + strconv.Itoa(i)
		b.record(id, &BadMessage{Device: id, Outcome: BadRejected}, big, now)
	}
	if len(b.m) != 8 || len(b.order) != 8 {
		t.Fatalf("%d devices kept (%d in order), want 8", len(b.m), len(b.order))
	}
	if _, ok := b.get("dev-11"); ok {
		t.Fatal("an old device was kept")
	}
	m, ok := b.get("dev-19")
	if !ok || len(m.Body) != maxBadMessageBytes || !m.Truncated || m.Size != len(big) {
		t.Fatalf("kept %d bytes, truncated %v, size %d", len(m.Body), m.Truncated, m.Size)
	}
}
