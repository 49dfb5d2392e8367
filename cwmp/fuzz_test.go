package cwmp

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// allocBound is the most Decode may allocate for n input bytes. The densest
// markup is a run of 4-byte empty elements ("<a/>"): etree and encoding/xml
// spend about 280 bytes on each (≈70× the input), and when such an element
// is an array item the decoder adds the item's struct, at most 176 bytes
// (AutonOpResult), sliced once at its exact size. The worst shape measured
// (an OpResult array of "<a/>" items) allocates ≈122× its size; 192× leaves
// headroom without hiding a quadratic blow-up, and 1 MiB covers the fixed
// per-call cost (decoder buffers, the MemStats call itself).
func allocBound(n int) uint64 { return 192*uint64(n) + 1<<20 }

// allocs returns the bytes allocated by one Decode of data.
func allocs(data []byte) (*Envelope, uint64, error) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	env, err := Decode(data)
	runtime.ReadMemStats(&after)
	return env, after.TotalAlloc - before.TotalAlloc, err
}

var sentinels = []error{ErrMalformed, ErrNotEnvelope, ErrUnknownMethod, ErrTooLarge, ErrTooDeep}

func isSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// FuzzDecode: arbitrary bytes never panic, allocate within allocBound, fail
// only with one of the codec's sentinel errors, and whatever decodes
// re-encodes to an envelope that decodes again and whose encoding is a
// fixed point (Encode∘Decode is idempotent after one pass).
func FuzzDecode(f *testing.F) {
	files, err := filepath.Glob("testdata/*.xml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed fixtures: %v", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"",
		"<",
		"\xef\xbb\xbf<Envelope><Body/></Envelope>",
		`<?xml version="1.0" encoding="latin1"?><Envelope><Body><Reboot><CommandKey>` + "\xe9" + `</CommandKey></Reboot></Body></Envelope>`,
		`<Envelope><Body><ChangeDUState><Operations xsi:type="x:OpStruct"/></ChangeDUState></Body></Envelope>`,
		`<Envelope><Header><ID>&#1;</ID></Header><Body><Fault/></Body></Envelope>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Read as Windows-1252 by the HTTP charset (every high byte
		// converted), the same bytes must still fail only with a sentinel.
		if _, err := (Decoder{}).DecodeCharset(data, "windows-1252"); err != nil && !isSentinel(err) {
			t.Fatalf("DecodeCharset error without a sentinel: %v", err)
		}
		env, n, err := allocs(data)
		if n > allocBound(len(data)) {
			t.Fatalf("Decode of %d bytes allocated %d bytes, bound %d", len(data), n, allocBound(len(data)))
		}
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			if errors.Is(err, ErrUnknownMethod) {
				if env == nil || env.Body != nil {
					t.Fatalf("unknown method: envelope %+v, want one with a nil Body", env)
				}
			} else if env != nil {
				t.Fatalf("envelope %+v returned with error %v", env, err)
			}
			return
		}
		out, err := Encode(env)
		if err != nil {
			t.Fatalf("Encode of decoded envelope: %v", err)
		}
		env2, err := Decode(out)
		if err != nil {
			t.Fatalf("re-decode: %v\n%s", err, out)
		}
		out2, err := Encode(env2)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("encoding is not a fixed point:\n%s\n%s", out, out2)
		}
	})
}

// TestDecodeAllocationBound decodes the densest shapes found while picking
// allocBound, at a size where the per-byte cost dominates the fixed one.
func TestDecodeAllocationBound(t *testing.T) {
	const n = 50000
	wrap := func(rpc string) string {
		return `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>` + rpc + `</s:Body></s:Envelope>`
	}
	a := strings.Repeat("<a/>", n)
	shapes := map[string]string{
		"empty elements":     wrap(a),
		"attributes":         wrap(strings.Repeat("<a b='' c=''/>", n)),
		"comments":           wrap(strings.Repeat("<!---->", n)),
		"parameter values":   wrap("<GetParameterValuesResponse><ParameterList>" + a + "</ParameterList></GetParameterValuesResponse>"),
		"strings":            wrap("<GetParameterValues><ParameterNames>" + a + "</ParameterNames></GetParameterValues>"),
		"attributes structs": wrap("<SetParameterAttributes><ParameterList>" + a + "</ParameterList></SetParameterAttributes>"),
		"transfers":          wrap("<GetAllQueuedTransfersResponse><TransferList>" + a + "</TransferList></GetAllQueuedTransfersResponse>"),
		"op results":         wrap("<DUStateChangeComplete><Results>" + a + "</Results></DUStateChangeComplete>"),
		"auton op results":   wrap("<AutonomousDUStateChangeComplete><Results>" + a + "</Results></AutonomousDUStateChangeComplete>"),
		"operations":         wrap("<ChangeDUState>" + strings.Repeat("<Operations/>", n) + "</ChangeDUState>"),
		"spv faults":         wrap("<Fault><detail><Fault>" + strings.Repeat("<SetParameterValuesFault/>", n) + "</Fault></detail></Fault>"),
		"garbage times":      wrap("<Inform>" + strings.Repeat("<CurrentTime>2024-99-99T99:99:99Z</CurrentTime>", n/10) + "</Inform>"),
	}
	for name, s := range shapes {
		_, got, err := allocs([]byte(s))
		if err != nil && !errors.Is(err, ErrUnknownMethod) {
			t.Fatalf("%s: %v", name, err)
		}
		ratio := float64(got) / float64(len(s))
		t.Logf("%-20s %8d bytes in, %10d allocated, %.0f×", name, len(s), got, ratio)
		if got > allocBound(len(s)) {
			t.Errorf("%s: %d bytes allocated for %d in, bound %d", name, got, len(s), allocBound(len(s)))
		}
	}
}
