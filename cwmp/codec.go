package cwmp

import "errors"

// Sentinel errors callers branch on (match with errors.Is). The server turns
// ErrUnknownMethod into CWMP fault 8000 and the others into HTTP 400.
// ErrNotEnvelope also covers an Envelope or Body in a namespace other than
// SOAP 1.1's (a SOAP 1.2 or foreign envelope is not CWMP).
var (
	ErrMalformed     = errors.New("cwmp: malformed envelope")
	ErrNotEnvelope   = errors.New("cwmp: root element is not a SOAP Envelope")
	ErrUnknownMethod = errors.New("cwmp: unknown method")
	ErrTooLarge      = errors.New("cwmp: envelope too large")
	ErrTooDeep       = errors.New("cwmp: envelope nested too deep")
)

// Default limits for Decode.
const (
	DefaultMaxEnvelopeSize = 8 << 20
	DefaultMaxDepth        = 32
)

// Decoder decodes envelopes within limits. The zero value uses the defaults.
type Decoder struct {
	// MaxSize is the largest envelope accepted, in bytes.
	MaxSize int
	// MaxDepth is the deepest element nesting accepted.
	MaxDepth int
}

// Decode parses one SOAP envelope with the default limits.
func Decode(data []byte) (*Envelope, error) { return Decoder{}.Decode(data) }

// Decode parses one SOAP envelope. See decode.go.
func (d Decoder) Decode(data []byte) (*Envelope, error) { return d.decode(data, "") }

// DecodeCharset parses one SOAP envelope that came with charset in its HTTP
// Content-Type (CharsetFromContentType). A document without an XML
// declaration naming an encoding (and without a UTF-8 byte order mark) is
// read in that charset: Thomson/Technicolor CPEs send ISO-8859-1 bodies
// that say so only in the header. A declaration, when present, wins.
// ISO-8859-1, its aliases and US-ASCII, Windows-1252 and UTF-8 are known;
// an unknown label is ignored. Values are returned in UTF-8 either way.
func (d Decoder) DecodeCharset(data []byte, charset string) (*Envelope, error) {
	return d.decode(data, charset)
}

// Encode serializes env as a SOAP envelope with the conventional prefixes.
// See encode.go.
func Encode(env *Envelope) ([]byte, error) { return encode(nil, env) }

// AppendEncode is Encode appending to dst (nil on error), for a caller
// that reuses its buffers: a simulated fleet encodes tens of KB per
// session.
func AppendEncode(dst []byte, env *Envelope) ([]byte, error) { return encode(dst, env) }
