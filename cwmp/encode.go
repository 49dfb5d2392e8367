package cwmp

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// errNilEnvelope is returned by Encode(nil).
var errNilEnvelope = errors.New("cwmp: encode nil envelope")

const envelopeOpen = `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
	`<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/"` +
	` xmlns:soap-enc="http://schemas.xmlsoap.org/soap/encoding/"` +
	` xmlns:xsd="http://www.w3.org/2001/XMLSchema"` +
	` xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:cwmp="`

// encode writes env with the conventional prefixes (soap-env, soap-enc,
// xsd, xsi, cwmp) straight into a byte slice: no DOM, every text and
// attribute escaped. RPC children are unqualified and in XSD order.
//
// Booleans: header flags are written "true" (they are only written when
// true); RPC booleans (NextLevel, NotificationChange, ...) are written 1/0,
// see FormatBool for why.
func encode(dst []byte, env *Envelope) ([]byte, error) {
	if env == nil {
		return nil, errNilEnvelope
	}
	w := writer{b: slices.Grow(dst, sizeHint(env.Body))}
	w.raw(envelopeOpen)
	ns := env.Namespace
	if ns == "" {
		ns = NS10
	}
	w.attrText(ns)
	w.raw(`">`)
	w.header(env)
	w.raw("<soap-env:Body>")
	if env.Body != nil {
		if err := w.message(env.Body); err != nil {
			return nil, err
		}
	}
	w.raw("</soap-env:Body></soap-env:Envelope>")
	return w.b, nil
}

// sizeHint is a buffer size that holds most envelopes of m without
// growing: a parameter list's entries are 100-200 bytes each, and growing
// a 20 KB reply from 1 KB copied it five times.
func sizeHint(m Message) int {
	n := 0
	switch m := m.(type) {
	case *GetParameterValuesResponse:
		if m != nil { // a typed nil is encoded (and refused) later
			n = len(m.ParameterList)
		}
	case *GetParameterNamesResponse:
		if m != nil { // a typed nil is encoded (and refused) later
			n = len(m.ParameterList)
		}
	case *SetParameterValues:
		if m != nil { // a typed nil is encoded (and refused) later
			n = len(m.ParameterList)
		}
	case *Inform:
		if m != nil { // a typed nil is encoded (and refused) later
			n = len(m.ParameterList) + len(m.Event)
		}
	case *GetParameterValues:
		if m != nil { // a typed nil is encoded (and refused) later
			n = len(m.ParameterNames) / 2
		}
	}
	return 1024 + 192*n
}

// writer appends XML to b.
type writer struct{ b []byte }

func (w *writer) header(env *Envelope) {
	hasID := env.HasID || env.ID != ""
	if !hasID && !env.HoldRequests && !env.NoMoreRequests && env.SessionTimeout == 0 &&
		env.SupportedCWMPVersions == "" && env.UseCWMPVersion == "" {
		return
	}
	w.raw("<soap-env:Header>")
	if hasID {
		w.raw(`<cwmp:ID soap-env:mustUnderstand="1">`)
		w.text(env.ID)
		w.raw("</cwmp:ID>")
	}
	if env.HoldRequests {
		w.raw(`<cwmp:HoldRequests soap-env:mustUnderstand="1">true</cwmp:HoldRequests>`)
	}
	if env.NoMoreRequests {
		w.raw(`<cwmp:NoMoreRequests>true</cwmp:NoMoreRequests>`)
	}
	if env.SessionTimeout > 0 {
		w.raw(`<cwmp:SessionTimeout soap-env:mustUnderstand="0">`)
		w.b = strconv.AppendUint(w.b, uint64(env.SessionTimeout), 10)
		w.raw("</cwmp:SessionTimeout>")
	}
	if env.SupportedCWMPVersions != "" {
		w.raw(`<cwmp:SupportedCWMPVersions soap-env:mustUnderstand="0">`)
		w.text(env.SupportedCWMPVersions)
		w.raw("</cwmp:SupportedCWMPVersions>")
	}
	if env.UseCWMPVersion != "" {
		w.raw(`<cwmp:UseCWMPVersion soap-env:mustUnderstand="1">`)
		w.text(env.UseCWMPVersion)
		w.raw("</cwmp:UseCWMPVersion>")
	}
	w.raw("</soap-env:Header>")
}

func (w *writer) raw(s string) { w.b = append(w.b, s...) }

// open writes <name>; names are the codec's own constants, never input.
func (w *writer) open(name string) {
	w.b = append(w.b, '<')
	w.b = append(w.b, name...)
	w.b = append(w.b, '>')
}

func (w *writer) close(name string) {
	w.b = append(w.b, '<', '/')
	w.b = append(w.b, name...)
	w.b = append(w.b, '>')
}

func (w *writer) str(name, v string) {
	w.open(name)
	w.text(v)
	w.close(name)
}

func (w *writer) uint(name string, v uint32) {
	w.open(name)
	w.b = strconv.AppendUint(w.b, uint64(v), 10)
	w.close(name)
}

func (w *writer) int(name string, v int) {
	w.open(name)
	w.b = strconv.AppendInt(w.b, int64(v), 10)
	w.close(name)
}

func (w *writer) bool(name string, v bool) {
	w.open(name)
	w.raw(FormatBool(v))
	w.close(name)
}

func (w *writer) time(name string, t time.Time) {
	w.open(name)
	w.b = appendTime(w.b, t)
	w.close(name)
}

// arrayOpen writes <name soap-enc:arrayType="typ[n]">.
func (w *writer) arrayOpen(name, typ string, n int) {
	w.b = append(w.b, '<')
	w.b = append(w.b, name...)
	w.raw(` soap-enc:arrayType="`)
	w.b = append(w.b, typ...)
	w.b = append(w.b, '[')
	w.b = strconv.AppendInt(w.b, int64(n), 10)
	w.raw(`]">`)
}

// strings writes a string array with items named item.
func (w *writer) strings(name, typ, item string, vs []string) {
	w.arrayOpen(name, typ, len(vs))
	for _, v := range vs {
		w.str(item, v)
	}
	w.close(name)
}

func (w *writer) parameterValues(name string, ps []ParameterValue) {
	w.arrayOpen(name, "cwmp:ParameterValueStruct", len(ps))
	for i := range ps {
		p := &ps[i]
		w.raw("<ParameterValueStruct><Name>")
		w.text(p.Name)
		w.raw(`</Name><Value xsi:type="`)
		w.attrText(NormalizeType(p.Type))
		w.raw(`">`)
		w.text(p.Value)
		w.raw("</Value></ParameterValueStruct>")
	}
	w.close(name)
}

func (w *writer) faultStruct(name string, f FaultStruct) {
	w.open(name)
	w.uint("FaultCode", f.Code)
	w.str("FaultString", f.String)
	w.close(name)
}

func (w *writer) opResult(o *OpResult) {
	w.str("UUID", o.UUID)
	w.str("DeploymentUnitRef", o.DeploymentUnitRef)
	w.str("Version", o.Version)
	w.str("CurrentState", o.CurrentState)
	w.bool("Resolved", o.Resolved)
	w.str("ExecutionUnitRefList", o.ExecutionUnitRefList)
	w.time("StartTime", o.StartTime)
	w.time("CompleteTime", o.CompleteTime)
	w.faultStruct("Fault", o.Fault)
}

// duOperation writes one ChangeDUState Operations element, with the fields
// its kind's XSD struct has, in XSD order. An unknown kind gets every field
// that is set, so nothing the caller gave is dropped.
func (w *writer) duOperation(op *DUOperation) {
	if op.Kind == "" {
		w.raw("<Operations>")
	} else {
		w.raw(`<Operations xsi:type="cwmp:`)
		w.attrText(op.Kind)
		w.raw(`OpStruct">`)
	}
	switch op.Kind {
	case "Install":
		w.str("URL", op.URL)
		w.str("UUID", op.UUID)
		w.str("Username", op.Username)
		w.str("Password", op.Password)
		w.str("ExecutionEnvRef", op.ExecutionEnvRef)
	case "Update":
		w.str("UUID", op.UUID)
		w.str("Version", op.Version)
		w.str("URL", op.URL)
		w.str("Username", op.Username)
		w.str("Password", op.Password)
	case "Uninstall":
		w.str("UUID", op.UUID)
		w.str("Version", op.Version)
		w.str("ExecutionEnvRef", op.ExecutionEnvRef)
	default:
		for _, f := range [...]struct{ name, v string }{
			{"URL", op.URL}, {"UUID", op.UUID}, {"Username", op.Username}, {"Password", op.Password},
			{"Version", op.Version}, {"ExecutionEnvRef", op.ExecutionEnvRef},
		} {
			if f.v != "" {
				w.str(f.name, f.v)
			}
		}
	}
	w.raw("</Operations>")
}

// message writes the RPC element for msg.
func (w *writer) message(msg Message) error {
	name := msg.Method()
	if v := reflect.ValueOf(msg); v.Kind() == reflect.Pointer && v.IsNil() {
		return fmt.Errorf("encode %s: nil %T body", name, msg)
	}
	if f, ok := msg.(*Fault); ok {
		w.fault(f)
		return nil
	}
	elem := "cwmp:" + name
	w.open(elem)
	switch m := msg.(type) {
	case *GetRPCMethods, *SetParameterAttributesResponse, *RebootResponse,
		*FactoryReset, *FactoryResetResponse, *ScheduleInformResponse,
		*ScheduleDownloadResponse, *CancelTransferResponse, *GetQueuedTransfers,
		*GetAllQueuedTransfers, *ChangeDUStateResponse, *SetVouchersResponse,
		*TransferCompleteResponse, *AutonomousTransferCompleteResponse,
		*RequestDownloadResponse, *DUStateChangeCompleteResponse,
		*AutonomousDUStateChangeCompleteResponse:
		// No arguments.
	case *GetRPCMethodsResponse:
		w.strings("MethodList", "xsd:string", "string", m.MethodList)
	case *SetParameterValues:
		w.parameterValues("ParameterList", m.ParameterList)
		w.str("ParameterKey", m.ParameterKey)
	case *SetParameterValuesResponse:
		w.int("Status", m.Status)
	case *GetParameterValues:
		w.strings("ParameterNames", "xsd:string", "string", m.ParameterNames)
	case *GetParameterValuesResponse:
		w.parameterValues("ParameterList", m.ParameterList)
	case *GetParameterNames:
		w.str("ParameterPath", m.ParameterPath)
		w.bool("NextLevel", m.NextLevel)
	case *GetParameterNamesResponse:
		w.arrayOpen("ParameterList", "cwmp:ParameterInfoStruct", len(m.ParameterList))
		for _, p := range m.ParameterList {
			w.raw("<ParameterInfoStruct>")
			w.str("Name", p.Name)
			w.bool("Writable", p.Writable)
			w.raw("</ParameterInfoStruct>")
		}
		w.close("ParameterList")
	case *SetParameterAttributes:
		w.arrayOpen("ParameterList", "cwmp:SetParameterAttributesStruct", len(m.ParameterList))
		for _, p := range m.ParameterList {
			w.raw("<SetParameterAttributesStruct>")
			w.str("Name", p.Name)
			w.bool("NotificationChange", p.NotificationChange)
			w.int("Notification", p.Notification)
			w.bool("AccessListChange", p.AccessListChange)
			w.strings("AccessList", "xsd:string", "string", p.AccessList)
			w.raw("</SetParameterAttributesStruct>")
		}
		w.close("ParameterList")
	case *GetParameterAttributes:
		w.strings("ParameterNames", "xsd:string", "string", m.ParameterNames)
	case *GetParameterAttributesResponse:
		w.arrayOpen("ParameterList", "cwmp:ParameterAttributeStruct", len(m.ParameterList))
		for _, p := range m.ParameterList {
			w.raw("<ParameterAttributeStruct>")
			w.str("Name", p.Name)
			w.int("Notification", p.Notification)
			w.strings("AccessList", "xsd:string", "string", p.AccessList)
			w.raw("</ParameterAttributeStruct>")
		}
		w.close("ParameterList")
	case *AddObject:
		w.str("ObjectName", m.ObjectName)
		w.str("ParameterKey", m.ParameterKey)
	case *AddObjectResponse:
		w.uint("InstanceNumber", m.InstanceNumber)
		w.int("Status", m.Status)
	case *DeleteObject:
		w.str("ObjectName", m.ObjectName)
		w.str("ParameterKey", m.ParameterKey)
	case *DeleteObjectResponse:
		w.int("Status", m.Status)
	case *Reboot:
		w.str("CommandKey", m.CommandKey)
	case *Download:
		w.str("CommandKey", m.CommandKey)
		w.str("FileType", m.FileType)
		w.str("URL", m.URL)
		w.str("Username", m.Username)
		w.str("Password", m.Password)
		w.uint("FileSize", m.FileSize)
		w.str("TargetFileName", m.TargetFileName)
		w.uint("DelaySeconds", m.DelaySeconds)
		w.str("SuccessURL", m.SuccessURL)
		w.str("FailureURL", m.FailureURL)
	case *DownloadResponse:
		w.int("Status", m.Status)
		w.time("StartTime", m.StartTime)
		w.time("CompleteTime", m.CompleteTime)
	case *Upload:
		w.str("CommandKey", m.CommandKey)
		w.str("FileType", m.FileType)
		w.str("URL", m.URL)
		w.str("Username", m.Username)
		w.str("Password", m.Password)
		w.uint("DelaySeconds", m.DelaySeconds)
	case *UploadResponse:
		w.int("Status", m.Status)
		w.time("StartTime", m.StartTime)
		w.time("CompleteTime", m.CompleteTime)
	case *ScheduleInform:
		w.uint("DelaySeconds", m.DelaySeconds)
		w.str("CommandKey", m.CommandKey)
	case *ScheduleDownload:
		w.str("CommandKey", m.CommandKey)
		w.str("FileType", m.FileType)
		w.str("URL", m.URL)
		w.str("Username", m.Username)
		w.str("Password", m.Password)
		w.uint("FileSize", m.FileSize)
		w.str("TargetFileName", m.TargetFileName)
		w.arrayOpen("TimeWindowList", "cwmp:TimeWindowStruct", len(m.TimeWindowList))
		for _, tw := range m.TimeWindowList {
			w.raw("<TimeWindowStruct>")
			w.uint("WindowStart", tw.WindowStart)
			w.uint("WindowEnd", tw.WindowEnd)
			w.str("WindowMode", tw.WindowMode)
			w.str("UserMessage", tw.UserMessage)
			w.int("MaxRetries", tw.MaxRetries)
			w.raw("</TimeWindowStruct>")
		}
		w.close("TimeWindowList")
	case *CancelTransfer:
		w.str("CommandKey", m.CommandKey)
	case *GetQueuedTransfersResponse:
		w.arrayOpen("TransferList", "cwmp:QueuedTransferStruct", len(m.TransferList))
		for _, t := range m.TransferList {
			w.raw("<QueuedTransferStruct>")
			w.str("CommandKey", t.CommandKey)
			w.int("State", t.State)
			w.raw("</QueuedTransferStruct>")
		}
		w.close("TransferList")
	case *GetAllQueuedTransfersResponse:
		w.arrayOpen("TransferList", "cwmp:AllQueuedTransferStruct", len(m.TransferList))
		for _, t := range m.TransferList {
			w.raw("<AllQueuedTransferStruct>")
			w.str("CommandKey", t.CommandKey)
			w.int("State", t.State)
			w.bool("IsDownload", t.IsDownload)
			w.str("FileType", t.FileType)
			w.uint("FileSize", t.FileSize)
			w.str("TargetFileName", t.TargetFileName)
			w.raw("</AllQueuedTransferStruct>")
		}
		w.close("TransferList")
	case *ChangeDUState:
		for i := range m.Operations {
			w.duOperation(&m.Operations[i])
		}
		w.str("CommandKey", m.CommandKey)
	case *SetVouchers:
		w.strings("VoucherList", "soap-enc:base64", "base64", m.VoucherList)
	case *GetOptions:
		w.str("OptionName", m.OptionName)
	case *GetOptionsResponse:
		w.arrayOpen("OptionList", "cwmp:OptionStruct", len(m.OptionList))
		for _, o := range m.OptionList {
			w.raw("<OptionStruct>")
			w.str("OptionName", o.OptionName)
			w.uint("VoucherSN", o.VoucherSN)
			w.uint("State", o.State)
			w.int("Mode", o.Mode)
			w.time("StartDate", o.StartDate)
			if !o.ExpirationDate.IsZero() {
				w.time("ExpirationDate", o.ExpirationDate)
			}
			w.int("IsTransferable", o.IsTransferable)
			w.raw("</OptionStruct>")
		}
		w.close("OptionList")
	case *Inform:
		w.raw("<DeviceId>")
		w.str("Manufacturer", m.DeviceId.Manufacturer)
		w.str("OUI", m.DeviceId.OUI)
		w.str("ProductClass", m.DeviceId.ProductClass)
		w.str("SerialNumber", m.DeviceId.SerialNumber)
		w.raw("</DeviceId>")
		w.arrayOpen("Event", "cwmp:EventStruct", len(m.Event))
		for _, ev := range m.Event {
			w.raw("<EventStruct>")
			w.str("EventCode", ev.Code)
			w.str("CommandKey", ev.CommandKey)
			w.raw("</EventStruct>")
		}
		w.close("Event")
		w.uint("MaxEnvelopes", m.MaxEnvelopes)
		w.time("CurrentTime", m.CurrentTime)
		w.uint("RetryCount", m.RetryCount)
		w.parameterValues("ParameterList", m.ParameterList)
	case *InformResponse:
		w.uint("MaxEnvelopes", m.MaxEnvelopes)
	case *TransferComplete:
		w.str("CommandKey", m.CommandKey)
		w.faultStruct("FaultStruct", m.FaultStruct)
		w.time("StartTime", m.StartTime)
		w.time("CompleteTime", m.CompleteTime)
	case *AutonomousTransferComplete:
		w.str("AnnounceURL", m.AnnounceURL)
		w.str("TransferURL", m.TransferURL)
		w.bool("IsDownload", m.IsDownload)
		w.str("FileType", m.FileType)
		w.uint("FileSize", m.FileSize)
		w.str("TargetFileName", m.TargetFileName)
		w.faultStruct("FaultStruct", m.FaultStruct)
		w.time("StartTime", m.StartTime)
		w.time("CompleteTime", m.CompleteTime)
	case *RequestDownload:
		w.str("FileType", m.FileType)
		w.arrayOpen("FileTypeArg", "cwmp:ArgStruct", len(m.FileTypeArg))
		for _, a := range m.FileTypeArg {
			w.raw("<ArgStruct>")
			w.str("Name", a.Name)
			w.str("Value", a.Value)
			w.raw("</ArgStruct>")
		}
		w.close("FileTypeArg")
	case *DUStateChangeComplete:
		w.arrayOpen("Results", "cwmp:OpResultStruct", len(m.Results))
		for i := range m.Results {
			w.raw("<OpResultStruct>")
			w.opResult(&m.Results[i])
			w.raw("</OpResultStruct>")
		}
		w.close("Results")
		w.str("CommandKey", m.CommandKey)
	case *AutonomousDUStateChangeComplete:
		w.arrayOpen("Results", "cwmp:AutonOpResultStruct", len(m.Results))
		for i := range m.Results {
			w.raw("<AutonOpResultStruct>")
			w.opResult(&m.Results[i].OpResult)
			w.str("OperationPerformed", m.Results[i].OperationPerformed)
			w.raw("</AutonOpResultStruct>")
		}
		w.close("Results")
	case *Kicked:
		w.str("Command", m.Command)
		w.str("Referer", m.Referer)
		w.str("Arg", m.Arg)
		w.str("Next", m.Next)
	case *KickedResponse:
		w.str("NextURL", m.NextURL)
	default:
		return fmt.Errorf("encode %s: unsupported message type %T: %w", name, msg, ErrUnknownMethod)
	}
	w.close(elem)
	return nil
}

func (w *writer) fault(f *Fault) {
	w.raw("<soap-env:Fault>")
	w.str("faultcode", f.SOAPCode)
	w.str("faultstring", f.SOAPString)
	w.raw("<detail><cwmp:Fault>")
	w.uint("FaultCode", f.Code)
	w.str("FaultString", f.String)
	for _, s := range f.SetParameterValuesFaults {
		w.raw("<SetParameterValuesFault>")
		w.str("ParameterName", s.ParameterName)
		w.uint("FaultCode", s.FaultCode)
		w.str("FaultString", s.FaultString)
		w.raw("</SetParameterValuesFault>")
	}
	w.raw("</cwmp:Fault></detail></soap-env:Fault>")
}

// text appends s escaped for element content.
func (w *writer) text(s string) { w.b = appendEscaped(w.b, s, false) }

// attrText appends s escaped for a double-quoted attribute value.
func (w *writer) attrText(s string) { w.b = appendEscaped(w.b, s, true) }

// needsEscape marks the bytes appendEscaped must look at: markup
// characters, C0 controls and every byte of a multi-byte sequence.
var needsEscape = func() (t [256]bool) {
	for c := range t {
		t[c] = c < 0x20 || c >= utf8.RuneSelf
	}
	for _, c := range "&<>\"'" {
		t[c] = true
	}
	return t
}()

// appendEscaped escapes s so a conforming parser returns it unchanged: the
// five markup characters become entities, CR becomes &#xD; (parsers turn a
// literal CR into LF), and in attributes TAB and LF become character
// references (parsers turn them into spaces). Characters XML 1.0 cannot
// carry at all (most C0 controls, invalid UTF-8, U+FFFE/U+FFFF) become
// U+FFFD, as encoding/xml does.
func appendEscaped(b []byte, s string, attr bool) []byte {
	last := 0
	for i := plainMarkupPrefix(s); i < len(s); {
		c := s[i]
		if !needsEscape[c] {
			i++
			continue
		}
		var esc string
		width := 1
		switch c {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '"':
			esc = "&#34;"
		case '\'':
			esc = "&#39;"
		case '\r':
			esc = "&#xD;"
		case '\n':
			if !attr {
				i++
				continue
			}
			esc = "&#xA;"
		case '\t':
			if !attr {
				i++
				continue
			}
			esc = "&#x9;"
		default:
			if c < 0x20 {
				esc = "\uFFFD"
				break
			}
			r, n := utf8.DecodeRuneInString(s[i:])
			width = n
			if r == utf8.RuneError && n == 1 || r == 0xFFFE || r == 0xFFFF {
				esc = "\uFFFD"
				break
			}
			i += n
			continue
		}
		b = append(b, s[last:i]...)
		b = append(b, esc...)
		i += width
		last = i
		i += plainMarkupPrefix(s[i:])
	}
	return append(b, s[last:]...)
}
