package fleet

import (
	"errors"
	"testing"
)

func TestDeviceID(t *testing.T) {
	tests := []struct {
		oui, class, serial string
		want               string
		err                error
	}{
		{"00259E", "HG8245H", "4857544312345678", "00259E-HG8245H-4857544312345678", nil},
		{"00259E", "", "ABC123", "00259E-ABC123", nil},
		{"001122", "Home Gateway", "SN-1/2", "001122-Home%20Gateway-SN%2D1%2F2", nil},
		{"001122", "X", "a\nb", "001122-X-a%Ab", nil},
		{"001122", "X", "é", "001122-X-%C3%A9", nil},
		{"", "X", "1", "", ErrBadDeviceID},
		{"001122", "X", "", "", ErrBadDeviceID},
	}
	for _, tt := range tests {
		got, err := DeviceID(tt.oui, tt.class, tt.serial)
		if !errors.Is(err, tt.err) || got != tt.want {
			t.Errorf("DeviceID(%q,%q,%q) = %q, %v; want %q, %v", tt.oui, tt.class, tt.serial, got, err, tt.want, tt.err)
		}
	}
}

func TestValidFileName(t *testing.T) {
	for _, ok := range []string{"fw_v2.bin", "config file.xml", "Prošivka-1.0.img"} {
		if !ValidFileName(ok) {
			t.Errorf("ValidFileName(%q) = false", ok)
		}
	}
	long := make([]byte, 256)
	for i := range long {
		long[i] = 'a'
	}
	for _, bad := range []string{"", ".", "..", "a/b", `a\b`, "a\nb", "a\x7fb", "caf\xe9", string(long)} {
		if ValidFileName(bad) {
			t.Errorf("ValidFileName(%q) = true", bad)
		}
	}
}
