package cwmp

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// headerDoc builds an envelope whose SOAP Header holds cwmp:ID,
// cwmp:HoldRequests and cwmp:SessionTimeout with the given texts (escaped
// so that any valid XML text survives), then raw, unescaped, inside the
// same Header.
func headerDoc(id, hold, timeout string, raw []byte) []byte {
	var b []byte
	b = append(b, `<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:cwmp="urn:dslforum-org:cwmp-1-2"><soap-env:Header>`...)
	b = append(b, `<cwmp:ID soap-env:mustUnderstand="1">`...)
	b = appendEscaped(b, id, false)
	b = append(b, `</cwmp:ID><cwmp:HoldRequests>`...)
	b = appendEscaped(b, hold, false)
	b = append(b, `</cwmp:HoldRequests><cwmp:SessionTimeout>`...)
	b = appendEscaped(b, timeout, false)
	b = append(b, `</cwmp:SessionTimeout>`...)
	b = append(b, raw...)
	b = append(b, `</soap-env:Header><soap-env:Body><cwmp:GetRPCMethods/></soap-env:Body></soap-env:Envelope>`...)
	return b
}

// xmlText reports whether s is text XML 1.0 can carry unchanged: valid
// UTF-8 made of XML Chars.
func xmlText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
		case r < 0x20, r == 0xFFFE, r == 0xFFFF:
			return false
		}
	}
	return true
}

type headerFields struct {
	ID                    string
	HasID                 bool
	HoldRequests          bool
	NoMoreRequests        bool
	SessionTimeout        uint32
	SupportedCWMPVersions string
	UseCWMPVersion        string
}

func fieldsOf(e *Envelope) headerFields {
	return headerFields{e.ID, e.HasID, e.HoldRequests, e.NoMoreRequests, e.SessionTimeout, e.SupportedCWMPVersions, e.UseCWMPVersion}
}

// FuzzDecodeHeader fuzzes the CWMP session header block (cwmp:ID,
// HoldRequests, SessionTimeout and anything else a CPE puts in the SOAP
// Header). Arbitrary header content never panics and fails only with a
// codec sentinel; header values are advisory, so well-formed text in them
// never fails the envelope; the first cwmp:ID wins and is trimmed;
// HoldRequests reads as ParseBool would; SessionTimeout is the unsigned
// 32-bit number the text spells or 0 (never a wrapped or negative value),
// which is what the edge clamps to its own ceiling; and the decoded header
// survives Encode → Decode unchanged.
func FuzzDecodeHeader(f *testing.F) {
	f.Add("cpe-1", "true", "30", []byte(nil))
	f.Add("", "0", "4294967295", []byte(nil))
	f.Add("  x  ", "TRUE", "4294967296", []byte(`<cwmp:ID>second</cwmp:ID>`))
	f.Add("a\r\nb", "yes", "-1", []byte(`<cwmp:sessionTimeout>60</cwmp:sessionTimeout>`))
	f.Add("id", "1", "18446744073709551616", []byte(`<cwmp:NoMoreRequests>1</cwmp:NoMoreRequests><cwmp:SupportedCWMPVersions>1.0,1.4</cwmp:SupportedCWMPVersions><cwmp:UseCWMPVersion>1.4</cwmp:UseCWMPVersion>`))
	f.Add("id", "false", "0x10", []byte(`<x:Unknown xmlns:x="urn:x" soap-env:mustUnderstand="1"><deep/></x:Unknown>`))
	f.Add("&<>", "", " 12 ", []byte(`</soap-env:Header><soap-env:Header>`))
	f.Add("id", "true", "5", []byte(`<cwmp:HoldRequests>`))
	f.Fuzz(func(t *testing.T, id, hold, timeout string, raw []byte) {
		env, err := Decode(headerDoc(id, hold, timeout, raw))
		simple := !bytes.ContainsAny(raw, "<&") && xmlText(string(raw)) && xmlText(id) && xmlText(hold) && xmlText(timeout)
		if err != nil {
			known := false
			for _, s := range sentinels {
				known = known || errors.Is(err, s)
			}
			if !known {
				t.Fatalf("error without a sentinel: %v", err)
			}
			if simple {
				t.Fatalf("well-formed header refused: %v", err)
			}
			return
		}
		if env.Body == nil || env.Body.Method() != MethodGetRPCMethods {
			// raw restructured the document (closed the Header and Body
			// early, say); only the robustness checks apply.
			return
		}
		if xmlText(id) { // ours is the first cwmp:ID, whatever raw adds
			if !env.HasID || env.ID != strings.TrimSpace(id) {
				t.Fatalf("ID %q (HasID %v), want %q", env.ID, env.HasID, strings.TrimSpace(id))
			}
		}
		if simple {
			wantHold, _ := ParseBool(hold)
			if env.HoldRequests != wantHold {
				t.Fatalf("HoldRequests %v from %q", env.HoldRequests, hold)
			}
			var want uint32
			if n, err := strconv.ParseUint(strings.TrimSpace(timeout), 10, 32); err == nil {
				want = uint32(n)
			}
			if env.SessionTimeout != want {
				t.Fatalf("SessionTimeout %d from %q, want %d", env.SessionTimeout, timeout, want)
			}
		}
		out, err := Encode(env)
		if err != nil {
			t.Fatalf("Encode of decoded envelope: %v", err)
		}
		back, err := Decode(out)
		if err != nil {
			t.Fatalf("re-decode: %v\n%s", err, out)
		}
		if fieldsOf(back) != fieldsOf(env) {
			t.Fatalf("header changed across Encode/Decode:\n%+v\n%+v\n%s", fieldsOf(env), fieldsOf(back), out)
		}
	})
}
