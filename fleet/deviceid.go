package fleet

import (
	"errors"
	"strings"
)

// ErrBadDeviceID means an Inform's DeviceId lacks the OUI or serial number
// needed to name the device.
var ErrBadDeviceID = errors.New("fleet: device id needs OUI and SerialNumber")

// DeviceID builds the device ID the way GenieACS does, so IDs match across
// both systems: OUI-ProductClass-SerialNumber, ProductClass left out when
// empty, every byte outside [A-Za-z0-9_] percent-encoded. GenieACS writes each
// byte with Number.toString(16).toUpperCase(), so bytes below 0x10 get a single
// hex digit ("%A" for a newline); that quirk is kept on purpose.
func DeviceID(oui, productClass, serial string) (string, error) {
	if oui == "" || serial == "" {
		return "", ErrBadDeviceID
	}
	var b strings.Builder
	b.Grow(len(oui) + len(productClass) + len(serial) + 2)
	escapeID(&b, oui)
	b.WriteByte('-')
	if productClass != "" {
		escapeID(&b, productClass)
		b.WriteByte('-')
	}
	escapeID(&b, serial)
	return b.String(), nil
}

const upperHex = "0123456789ABCDEF"

func escapeID(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			if c >= 0x10 {
				b.WriteByte(upperHex[c>>4])
			}
			b.WriteByte(upperHex[c&0xF])
		}
	}
}
