package fleet

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// maxChannelFaultText bounds what a channel fault carries upstream: its
// message and each detail, as the edge clips them.
const (
	maxChannelName  = 128 // preset.MaxNameLen
	maxFaultMessage = 4 << 10
	maxFaultDetails = 64
)

// ChannelFault is a preset channel's fault (GenieACS's fault with ID
// "<device>:<channel>"), as the edge that recorded it reports it to the
// core, and as the core tells that edge it was cleared. Presets of a
// faulted channel wait for its retry (Timestamp plus the retry delay
// doubled Retries times) or for the fault to be deleted.
type ChannelFault struct {
	Device    string            `json:"device" cbor:"1,keyasint"`
	Channel   string            `json:"channel" cbor:"2,keyasint"`
	Code      string            `json:"code,omitempty" cbor:"3,keyasint,omitempty"`
	Message   string            `json:"message,omitempty" cbor:"4,keyasint,omitempty"`
	Detail    map[string]string `json:"detail,omitempty" cbor:"5,keyasint,omitempty"`
	Timestamp time.Time         `json:"timestamp" cbor:"6,keyasint"`
	// Retries counts the sessions that retried the channel and faulted
	// again.
	Retries int `json:"retries,omitempty" cbor:"7,keyasint,omitempty"`
	// Cleared says the fault is gone (deleted, or its channel ran clean
	// at a retry); Timestamp is then the time of the fault it clears, so
	// a newer fault of the channel is not cleared with it.
	Cleared bool `json:"cleared,omitempty" cbor:"8,keyasint,omitempty"`
}

// ID is the fault's GenieACS ID, "<device>:<channel>".
func (f *ChannelFault) ID() string { return f.Device + ":" + f.Channel }

// Validate checks the bounds every holder relies on: a device ID and a
// channel that can be keys (no '/', no control characters; device IDs
// have no ':'), and a bounded message and detail.
func (f *ChannelFault) Validate() error {
	switch {
	case f.Device == "" || len(f.Device) > maxProvisionName || strings.ContainsAny(f.Device, "/:") || !utf8.ValidString(f.Device) || hasControl(f.Device):
		return fmt.Errorf("%w: channel fault: bad device ID %q", ErrBadRecord, f.Device)
	case f.Channel == "" || len(f.Channel) > maxChannelName || strings.Contains(f.Channel, "/") || !utf8.ValidString(f.Channel) || hasControl(f.Channel):
		return fmt.Errorf("%w: channel fault of %s: bad channel %q", ErrBadRecord, f.Device, f.Channel)
	case f.Retries < 0:
		return fmt.Errorf("%w: channel fault %s: negative retries", ErrBadRecord, f.ID())
	case len(f.Message) > maxFaultMessage || len(f.Detail) > maxFaultDetails:
		return fmt.Errorf("%w: channel fault %s: message or detail too large", ErrBadRecord, f.ID())
	}
	for k, v := range f.Detail {
		if len(k)+len(v) > maxFaultMessage {
			return fmt.Errorf("%w: channel fault %s: detail %q too large", ErrBadRecord, f.ID(), k)
		}
	}
	return nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}
