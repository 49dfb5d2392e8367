package edge

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
)

// Bounds of what the edge keeps of CPE messages it could not fully read.
const (
	// maxBadMessageBytes is how much of a message is kept: enough for an
	// Inform or a few hundred parameters, which is what a vendor needs
	// to see the broken element.
	maxBadMessageBytes = 16 << 10
	// maxBadMessages bounds the devices remembered (oldest forgotten
	// first): at most ~16 MiB however many devices misbehave.
	maxBadMessages = 1024
	// badMessageLogEvery is how often one device's bad messages are
	// logged: a CPE retries its broken Inform every few seconds, and one
	// line a minute (with the count of those not logged) says as much.
	badMessageLogEvery = time.Minute
)

// Outcomes of a message the edge could not fully read (BadMessage.Outcome).
const (
	// BadRejected: the message was refused (400, or fault 8000 for an
	// unknown method); the CPE was told.
	BadRejected = "rejected"
	// BadPartial: malformed list entries were left out and the rest was
	// used (cwmp.Envelope.Skipped).
	BadPartial = "partial"
)

// BadMessage is the last CWMP message from a device that the edge could not
// fully read, kept so that a support engineer can attach it to a vendor
// ticket (GET /api/v1/devices/{id}/last-bad-message). The body is the
// request as received (after gzip/deflate), its first 16 KiB, with the
// values of secret parameters and of password elements replaced by
// fleet.SecretMask.
type BadMessage struct {
	Device string    `json:"device"`
	Time   time.Time `json:"time"`
	// Outcome is BadRejected or BadPartial.
	Outcome string `json:"outcome"`
	// Reason is the metric label: malformed, not_envelope, too_deep,
	// too_long, unknown_method, or an entry's reason (invalid_boolean,
	// missing_name, ...) for a partial message.
	Reason string `json:"reason"`
	// Error names the element and what is wrong with it.
	Error       string `json:"error"`
	ContentType string `json:"contentType,omitempty"`
	RemoteAddr  string `json:"remoteAddr,omitempty"`
	// Size is the whole body's size; Truncated says Body holds less.
	Size      int  `json:"size"`
	Truncated bool `json:"truncated"`
	// BodyEncoding is "text" when Body is the bytes as sent (valid
	// UTF-8), or "base64" when they were not UTF-8 (a Latin-1 body),
	// so that the exact bytes survive JSON.
	BodyEncoding string `json:"bodyEncoding"`
	Body         string `json:"body"`
}

// badMessages holds the last BadMessage of each device, in memory only:
// a device with broken firmware sends the same message again at its next
// Inform, so a restart loses nothing that does not come back within an
// inform interval, and the failure path (which a misbehaving CPE drives)
// then costs no disk write. It also rate-limits the log lines about bad
// messages per device.
type badMessages struct {
	mu    sync.Mutex
	m     map[string]*badEntry
	order []string // keys in insertion order, for eviction: exactly those of m
	max   int
	log   *slog.Logger
}

type badEntry struct {
	msg        *BadMessage // nil until a body was kept
	logged     time.Time
	suppressed int
}

func newBadMessages(log *slog.Logger) *badMessages {
	return &badMessages{m: make(map[string]*badEntry), max: maxBadMessages, log: log}
}

// get returns a copy of the device's last bad message.
func (b *badMessages) get(device string) (BadMessage, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[device]
	if !ok || e.msg == nil {
		return BadMessage{}, false
	}
	return *e.msg, true
}

// record keeps msg (its body not yet bounded or redacted) as key's last bad
// message and logs it, at most once per badMessageLogEvery per key. key is
// the device ID, or "ip:<address>" when the device is unknown (then
// nothing is kept, only logged).
func (b *badMessages) record(key string, msg *BadMessage, body []byte, now time.Time) {
	var kept *BadMessage
	if msg.Device != "" && body != nil {
		kept = msg
		kept.Size = len(body)
		red := redactSecrets(body)
		if len(red) > maxBadMessageBytes {
			red, kept.Truncated = red[:maxBadMessageBytes], true
		}
		if utf8.Valid(red) {
			kept.BodyEncoding, kept.Body = "text", string(red)
		} else {
			kept.BodyEncoding, kept.Body = "base64", base64.StdEncoding.EncodeToString(red)
		}
	}
	b.mu.Lock()
	e, ok := b.m[key]
	if !ok {
		for len(b.m) >= b.max && len(b.order) > 0 {
			delete(b.m, b.order[0])
			b.order = b.order[1:]
		}
		e = &badEntry{}
		b.m[key] = e
		b.order = append(b.order, key)
	}
	if kept != nil {
		e.msg = kept
	}
	logNow := now.Sub(e.logged) >= badMessageLogEvery
	suppressed := e.suppressed
	if logNow {
		e.logged, e.suppressed = now, 0
	} else {
		e.suppressed++
	}
	b.mu.Unlock()
	if logNow {
		device := msg.Device
		if device == "" {
			device = "unknown"
		}
		b.log.Warn("CPE message could not be fully read", "device", device, "remote", msg.RemoteAddr,
			"outcome", msg.Outcome, "reason", msg.Reason, "err", msg.Error, "not_logged_since_last", suppressed)
	}
}

// rejectReason is the metric label of a message the codec or the limits
// refused.
func rejectReason(err error) string {
	switch {
	case errors.Is(err, cwmp.ErrUnknownMethod):
		return "unknown_method"
	case errors.Is(err, cwmp.ErrNotEnvelope):
		return "not_envelope"
	case errors.Is(err, cwmp.ErrTooDeep):
		return "too_deep"
	case errors.Is(err, cwmp.ErrTooLarge):
		return "too_large"
	case errors.Is(err, ErrTooLong):
		return "too_long"
	}
	return "malformed"
}

// skippedSummary describes an envelope's skipped entries for a log line
// and a BadMessage: the first few in full, then how many more.
func skippedSummary(env *cwmp.Envelope) string {
	var sb strings.Builder
	for i, s := range env.Skipped {
		if i == 4 {
			break
		}
		if i > 0 {
			sb.WriteString("; ")
		}
		sb.WriteString(s.String())
	}
	if more := env.SkippedTotal - min(len(env.Skipped), 4); more > 0 {
		fmt.Fprintf(&sb, "; and %d more", more)
	}
	method := "message"
	if env.Body != nil {
		method = env.Body.Method()
	}
	return fmt.Sprintf("%s: %d malformed entries left out: %s", method, env.SkippedTotal, sb.String())
}

// sniffDeviceID finds the DeviceId of an Inform the codec refused, by
// looking for its OUI, ProductClass and SerialNumber elements in the raw
// bytes, so that its last bad message is kept under the device it claims
// to be. It is only as trustworthy as the Inform itself would have been
// (the request was authenticated first when CPE auth is on); "" when the
// body names none.
func sniffDeviceID(body []byte) string {
	oui, serial := elementText(body, "OUI"), elementText(body, "SerialNumber")
	if oui == "" || serial == "" || len(oui) > maxOUILen || len(serial) > maxSerialLen {
		return ""
	}
	pc := elementText(body, "ProductClass")
	if len(pc) > maxProductClassLen {
		return ""
	}
	id, err := fleet.DeviceID(oui, pc, serial)
	if err != nil {
		return ""
	}
	return id
}

// elementText returns the trimmed text of the first element with local
// name name (any prefix) in raw XML, up to the next tag; "" when none.
func elementText(body []byte, name string) string {
	for i := 0; ; {
		j := bytes.IndexByte(body[i:], '<')
		if j < 0 {
			return ""
		}
		i += j + 1
		end := bytes.IndexByte(body[i:], '>')
		if end < 0 {
			return ""
		}
		tag := body[i : i+end]
		if len(tag) == 0 || tag[0] == '/' || tag[0] == '?' || tag[0] == '!' || tag[len(tag)-1] == '/' {
			continue
		}
		if k := bytes.IndexAny(tag, " \t\r\n"); k >= 0 {
			tag = tag[:k]
		}
		if k := bytes.IndexByte(tag, ':'); k >= 0 {
			tag = tag[k+1:]
		}
		if string(tag) != name {
			continue
		}
		text := body[i+end+1:]
		if k := bytes.IndexByte(text, '<'); k >= 0 {
			text = text[:k]
		}
		return string(bytes.TrimSpace(text))
	}
}

// redactSecrets returns raw XML with secrets replaced by fleet.SecretMask:
// the Value following a Name that fleet.IsSecretParameter says is secret
// (a ParameterValueStruct), and the content of any element whose own
// local name is secret (Password, ConnectionRequestPassword,
// KeyPassphrase, ...). It works on the bytes, not a parse, because the
// message it serves is one that did not parse: a value cut short by the
// end of the input, or holding CDATA, is masked to the end of the element
// or of the input.
func redactSecrets(body []byte) []byte {
	var out []byte // allocated at the first secret
	copied := 0    // body[:copied] is in out
	secretName := false
	for i := 0; i < len(body); {
		j := bytes.IndexByte(body[i:], '<')
		if j < 0 {
			break
		}
		start := i + j + 1
		end := bytes.IndexByte(body[start:], '>')
		if end < 0 {
			break
		}
		tag := body[start : start+end]
		i = start + end + 1
		if len(tag) == 0 || tag[0] == '/' || tag[0] == '?' || tag[0] == '!' || tag[len(tag)-1] == '/' {
			continue
		}
		local := tag
		if k := bytes.IndexAny(local, " \t\r\n"); k >= 0 {
			local = local[:k]
		}
		if k := bytes.IndexByte(local, ':'); k >= 0 {
			local = local[k+1:]
		}
		mask := false
		switch string(local) {
		case "Name", "ParameterName":
			text := body[i:]
			if k := bytes.IndexByte(text, '<'); k >= 0 {
				text = text[:k]
			}
			secretName = fleet.IsSecretParameter(strings.TrimLeft(string(bytes.TrimSpace(text)), "."))
			continue
		case "Value":
			mask, secretName = secretName, false
		default:
			mask = fleet.IsSecretParameter(string(local))
		}
		if !mask {
			continue
		}
		// The content runs to this element's end tag (any prefix), or
		// to the end of the input.
		stop := closeTag(body, i, local)
		if stop == i {
			continue // empty: nothing to hide
		}
		out = append(out, body[copied:i]...)
		out = append(out, fleet.SecretMask...)
		copied, i = stop, stop
	}
	if out == nil {
		return body
	}
	return append(out, body[copied:]...)
}

// closeTag returns the offset of the end tag of local (with any prefix)
// at or after from, or len(body).
func closeTag(body []byte, from int, local []byte) int {
	for i := from; ; {
		j := bytes.Index(body[i:], []byte("</"))
		if j < 0 {
			return len(body)
		}
		k := i + j + 2
		end := bytes.IndexByte(body[k:], '>')
		if end < 0 {
			return len(body)
		}
		name := bytes.TrimSpace(body[k : k+end])
		if c := bytes.IndexByte(name, ':'); c >= 0 {
			name = name[c+1:]
		}
		if bytes.Equal(name, local) {
			return i + j
		}
		i = k
	}
}
