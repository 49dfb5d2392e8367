package cwmp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/beevik/etree"
)

// cwmpNamespacePrefix starts every CWMP namespace URI; the digits after it
// vary (1-0 … 1-4 occur in the field).
const cwmpNamespacePrefix = "urn:dslforum-org:cwmp-1-"

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// decode parses data into an Envelope. The size limit is checked before
// any parsing work. Then the typed fast path (fastDecode) reads the
// bootstrap's plain messages; for anything else a lexical scan refuses
// DTDs before the fast DOM parse (fastParse) or etree runs, each with its
// depth limit set to ours.
//
// httpCharset is the charset the HTTP Content-Type named, or "": it decides
// how a document without an encoding declaration is read (see
// DecodeCharset).
func (d Decoder) decode(data []byte, httpCharset string) (*Envelope, error) {
	maxSize := d.MaxSize
	if maxSize <= 0 {
		maxSize = DefaultMaxEnvelopeSize
	}
	maxDepth := d.MaxDepth
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	if len(data) > maxSize {
		return nil, fmt.Errorf("decode envelope: %d bytes exceeds limit %d: %w", len(data), maxSize, ErrTooLarge)
	}
	hadBOM := bytes.HasPrefix(data, utf8BOM)
	data = bytes.TrimPrefix(data, utf8BOM)
	data = bytes.TrimLeft(data, " \t\r\n")
	if len(data) == 0 {
		return nil, fmt.Errorf("decode envelope: empty input: %w", ErrMalformed)
	}
	if httpCharset != "" && !declaresEncoding(data) && !hadBOM {
		data = transcode(data, httpCharset)
	}
	// The bootstrap's messages, in their plain shape, skip the document
	// altogether; everything else (and every error) takes the DOM path.
	// fastDecode accepts no markup declaration (a "<!" that starts no
	// comment), so the scan for them is left to the DOM path: on a 25 KB
	// answer it was a tenth of the decode.
	if env, ok := fastDecode(data, maxDepth); ok {
		return env, nil
	}
	if err := refuseDirectives(data); err != nil {
		return nil, err
	}
	doc, ok := fastParse(data, maxDepth)
	if !ok {
		var err error
		if doc, err = etreeParse(data, maxDepth); err != nil {
			return nil, err
		}
	}
	return decodeDoc(doc)
}

// etreeParse is the general parse: etree over encoding/xml, permissive.
func etreeParse(data []byte, maxDepth int) (*etree.Document, error) {
	doc := etree.NewDocument()
	doc.ReadSettings = etree.ReadSettings{
		CharsetReader: charsetReader,
		// Permissive tolerates what embedded XML writers get wrong (a bare
		// "&" in an SSID, unquoted attributes) without changing the
		// meaning of well-formed input; end tags are still matched by etree.
		Permissive: true,
		MaxDepth:   maxDepth,
	}
	if err := doc.ReadFromBytes(data); err != nil {
		if errors.Is(err, etree.ErrMaxDepth) {
			return nil, fmt.Errorf("decode envelope: deeper than %d elements: %w", maxDepth, ErrTooDeep)
		}
		return nil, fmt.Errorf("decode envelope: %w: %v", ErrMalformed, err)
	}
	return doc, nil
}

// decodeDoc reads the Envelope out of a parsed document.
func decodeDoc(doc *etree.Document) (*Envelope, error) {
	root := doc.Root()
	if root == nil {
		return nil, fmt.Errorf("decode envelope: no root element: %w", ErrMalformed)
	}
	if root.Tag != "Envelope" {
		return nil, fmt.Errorf("decode envelope: root is %q: %w", clip(root.FullTag()), ErrNotEnvelope)
	}
	if err := checkSOAPNamespace(root); err != nil {
		return nil, err
	}

	env := new(Envelope)
	var idElem *etree.Element
	if h := child(root, "Header"); h != nil {
		idElem = decodeHeader(h, env)
	}
	body := child(root, "Body")
	if body == nil {
		return nil, fmt.Errorf("decode envelope: no Body: %w", ErrMalformed)
	}
	if err := checkSOAPNamespace(body); err != nil {
		return nil, err
	}
	rpc := firstChild(body)
	env.Namespace = findNamespace(root, rpc, idElem)
	if rpc == nil {
		return env, nil
	}
	msg := newMessage(rpc.Tag)
	if msg == nil {
		return env, fmt.Errorf("decode %s: %w", clip(rpc.Tag), ErrUnknownMethod)
	}
	r := reader{method: rpc.Tag}
	r.message(rpc, msg)
	if r.err != nil {
		return nil, r.err
	}
	env.Body = msg
	env.Skipped, env.SkippedTotal = r.skipped, r.skippedTotal
	return env, nil
}

// checkSOAPNamespace refuses a SOAP element (Envelope, Body) qualified with
// a namespace other than SOAP 1.1's, which is the only SOAP version CWMP
// uses: a SOAP 1.2 envelope or an arbitrary one would otherwise be read as
// if it were CWMP. An unqualified element (no prefix, no default
// namespace) is still accepted, as are unbound prefixes: embedded stacks
// and hand-written test tools send those, and they name no other version.
// Any prefix bound to the right URI is fine.
func checkSOAPNamespace(e *etree.Element) error {
	if ns := e.NamespaceURI(); ns != "" && ns != SOAPEnvNS {
		return fmt.Errorf("decode envelope: %s in namespace %q, want SOAP 1.1 %s: %w", e.Tag, clip(ns), SOAPEnvNS, ErrNotEnvelope)
	}
	return nil
}

// refuseDirectives rejects any markup declaration ("<!DOCTYPE", "<!ENTITY",
// ...). etree would not expand custom entities anyway, but refusing DTDs
// outright means no parser configuration can ever make expansion possible.
// Comments and CDATA sections are skipped so their content cannot trigger a
// false positive.
func refuseDirectives(data []byte) error {
	for {
		i := bytes.Index(data, []byte("<!"))
		if i < 0 {
			return nil
		}
		data = data[i:]
		switch {
		case bytes.HasPrefix(data, []byte("<!--")):
			end := bytes.Index(data[4:], []byte("-->"))
			if end < 0 {
				return nil // unterminated comment: the parser reports it
			}
			data = data[4+end+3:]
		case bytes.HasPrefix(data, []byte("<![CDATA[")):
			end := bytes.Index(data[9:], []byte("]]>"))
			if end < 0 {
				return nil
			}
			data = data[9+end+3:]
		default:
			return fmt.Errorf("decode envelope: markup declaration (DOCTYPE/ENTITY) not allowed: %w", ErrMalformed)
		}
	}
}

// charsetReader accepts the charsets CPEs declare besides UTF-8, which
// encoding/xml handles itself. Everything else is refused: guessing would
// silently corrupt parameter values.
func charsetReader(charset string, input io.Reader) (io.Reader, error) {
	table, ok := singleByteCharset(charset)
	if !ok {
		return nil, fmt.Errorf("unsupported charset %q", clip(charset))
	}
	if table == charsetUTF8 {
		return input, nil
	}
	return &byteCharsetReader{r: input, table: table}, nil
}

// Single-byte charsets: UTF-8 passes through, the others are converted.
type charsetTable int

const (
	charsetUTF8 charsetTable = iota
	charsetLatin1
	charsetWindows1252
)

// singleByteCharset names the conversion for a charset label.
func singleByteCharset(charset string) (charsetTable, bool) {
	switch strings.ToLower(strings.Trim(strings.TrimSpace(charset), `"'`)) {
	case "utf8", "utf-8":
		return charsetUTF8, true
	case "iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "latin-1", "l1",
		"us-ascii", "ascii", "iso-ir-100", "cp819", "ibm819", "iso_8859-1:1987", "csisolatin1":
		// US-ASCII is a subset of Latin-1, and reading stray high bytes
		// as Latin-1 beats rejecting the envelope.
		return charsetLatin1, true
	case "windows-1252", "cp1252", "x-cp1252":
		return charsetWindows1252, true
	}
	return 0, false
}

// windows1252 holds the characters Windows-1252 puts at 0x80–0x9F, where
// ISO-8859-1 has C1 controls; its five unassigned bytes stay those
// controls, as the WHATWG Encoding Standard maps them.
var windows1252 = [32]rune{
	0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
	0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
	0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
	0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
}

// appendRune appends byte c of the charset as UTF-8.
func (t charsetTable) appendRune(out []byte, c byte) []byte {
	if c < 0x80 {
		return append(out, c)
	}
	if t == charsetWindows1252 && c < 0xA0 {
		return utf8.AppendRune(out, windows1252[c-0x80])
	}
	return utf8.AppendRune(out, rune(c))
}

// transcode converts a whole document from the HTTP charset to UTF-8. An
// unknown label is ignored (the document is read as UTF-8, which fails
// only if it is not): the header is advisory, and CPEs write odd ones
// ("charset=utf8;", "UTF-8 "). A document in pure ASCII is returned as is.
func transcode(data []byte, charset string) []byte {
	table, ok := singleByteCharset(charset)
	if !ok || table == charsetUTF8 {
		return data
	}
	high := 0
	for _, c := range data {
		if c >= 0x80 {
			high++
		}
	}
	if high == 0 {
		return data
	}
	// Each high byte becomes at most three bytes (€ is U+20AC).
	out := make([]byte, 0, len(data)+2*high)
	for _, c := range data {
		out = table.appendRune(out, c)
	}
	return out
}

// declaresEncoding reports whether data starts with an XML declaration
// naming an encoding, which then wins over the HTTP charset. A declaration
// without one says nothing about the bytes, so the HTTP charset applies.
func declaresEncoding(data []byte) bool {
	if !bytes.HasPrefix(data, []byte("<?xml")) {
		return false
	}
	end := bytes.Index(data, []byte("?>"))
	if end < 0 {
		return false
	}
	return bytes.Contains(data[:end], []byte("encoding"))
}

// CharsetFromContentType returns the charset parameter of an HTTP
// Content-Type value ("text/xml; charset=ISO-8859-1" → "ISO-8859-1"), or
// "". It reads what CPEs write: quoted or not, any case, and a header
// mime.ParseMediaType would refuse.
func CharsetFromContentType(ct string) string {
	for _, part := range strings.Split(ct, ";")[1:] {
		k, v, ok := strings.Cut(part, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "charset") {
			return strings.Trim(strings.TrimSpace(v), `"' `)
		}
	}
	return ""
}

// byteCharsetReader converts a single-byte charset to UTF-8.
type byteCharsetReader struct {
	r     io.Reader
	table charsetTable
	buf   []byte // raw bytes read but not yet converted
	out   []byte // converted bytes not yet returned
}

func (l *byteCharsetReader) Read(p []byte) (int, error) {
	if len(l.out) == 0 {
		if cap(l.buf) == 0 {
			l.buf = make([]byte, 2048)
		}
		n, err := l.r.Read(l.buf[:cap(l.buf)])
		if n == 0 {
			return 0, err
		}
		l.out = l.out[:0]
		for _, c := range l.buf[:n] {
			l.out = l.table.appendRune(l.out, c)
		}
	}
	n := copy(p, l.out)
	l.out = l.out[n:]
	return n, nil
}

// decodeHeader fills env from the SOAP Header and returns the cwmp:ID
// element, whose prefix can tell the CWMP namespace. Names are matched
// case-insensitively: GenieACS writes "sessionTimeout" where the XSD says
// "SessionTimeout". Header values are advisory, so bad ones read as zero.
func decodeHeader(h *etree.Element, env *Envelope) *etree.Element {
	var idElem *etree.Element
	for _, t := range h.Child {
		e, ok := t.(*etree.Element)
		if !ok {
			continue
		}
		v := strings.TrimSpace(e.Text())
		switch strings.ToLower(e.Tag) {
		case "id":
			if idElem == nil {
				idElem = e
				env.ID, env.HasID = v, true
			}
		default:
			setHeaderField(env, strings.ToLower(e.Tag), v)
		}
	}
	return idElem
}

// findNamespace returns the CWMP namespace URI in use: the one bound to the
// RPC element's prefix (for a SOAP Fault, the detail's cwmp:Fault), else the
// cwmp:ID's, else any cwmp URI declared on the Envelope. "" when none.
func findNamespace(root, rpc, idElem *etree.Element) string {
	if rpc != nil {
		if ns := rpc.NamespaceURI(); isCWMPNamespace(ns) {
			return ns
		}
		if rpc.Tag == MethodFault {
			if f := child(child(rpc, "detail"), "Fault"); f != nil {
				if ns := f.NamespaceURI(); isCWMPNamespace(ns) {
					return ns
				}
			}
		}
	}
	if idElem != nil {
		if ns := idElem.NamespaceURI(); isCWMPNamespace(ns) {
			return ns
		}
	}
	for _, a := range root.Attr {
		if (a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns")) && isCWMPNamespace(a.Value) {
			return a.Value
		}
	}
	return ""
}

// isCWMPNamespace reports whether ns is urn:dslforum-org:cwmp-1-<digits>.
func isCWMPNamespace(ns string) bool {
	rest, ok := strings.CutPrefix(ns, cwmpNamespacePrefix)
	if !ok || rest == "" || len(rest) > 3 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if rest[i] < '0' || rest[i] > '9' {
			return false
		}
	}
	return true
}

// child returns e's first child element with local name name, or nil. The
// prefix is ignored on purpose: CPEs use every prefix imaginable, and some
// qualify RPC children that the XSD leaves unqualified. A nil e has no
// children, which lets lookups chain.
func child(e *etree.Element, name string) *etree.Element {
	if e == nil {
		return nil
	}
	for _, t := range e.Child {
		if c, ok := t.(*etree.Element); ok && c.Tag == name {
			return c
		}
	}
	return nil
}

// childFold is child with a case-insensitive name, for SOAP's own fault
// elements, which CPEs capitalize inconsistently.
func childFold(e *etree.Element, name string) *etree.Element {
	if e == nil {
		return nil
	}
	for _, t := range e.Child {
		if c, ok := t.(*etree.Element); ok && strings.EqualFold(c.Tag, name) {
			return c
		}
	}
	return nil
}

// firstChild returns e's first child element, or nil.
func firstChild(e *etree.Element) *etree.Element {
	for _, t := range e.Child {
		if c, ok := t.(*etree.Element); ok {
			return c
		}
	}
	return nil
}

// countItems counts the child elements of e, so slices are allocated once.
func countItems(e *etree.Element) int {
	if e == nil {
		return 0
	}
	n := 0
	for _, t := range e.Child {
		if _, ok := t.(*etree.Element); ok {
			n++
		}
	}
	return n
}

// collect decodes every child element of the SOAP-ENC array a with fn. The
// item elements' names and the arrayType count are ignored: CPEs get both
// wrong. An item fn finds malformed (it called r.fail) is left out and
// recorded in r.skipped, so one bad entry never costs the others (a
// femtocell's 227-entry GetParameterNamesResponse with one
// <Writable>30</Writable> keeps its 226 good entries). The slice is sized
// from the item count first: besides saving copies, this keeps the memory
// a hostile envelope can make us allocate proportional to its size
// (FuzzDecode checks the bound).
func collect[T any](r *reader, list string, a *etree.Element, fn func(*etree.Element) T) []T {
	n := countItems(a)
	if n == 0 {
		return nil
	}
	out := make([]T, 0, n)
	i := -1
	for _, t := range a.Child {
		c, ok := t.(*etree.Element)
		if !ok {
			continue
		}
		i++
		if v, ok := item(r, list, i, func() T { return fn(c) }); ok {
			out = append(out, v)
		}
	}
	return out
}

// item runs fn as the decoding of entry i of list: a failure inside it is
// recorded as a skipped entry instead of failing the envelope.
func item[T any](r *reader, list string, i int, fn func() T) (T, bool) {
	saved := r.err
	r.err, r.inItem = nil, true
	v := fn()
	failed := r.err != nil
	r.err, r.inItem = saved, false
	if failed {
		r.skip(SkippedEntry{List: list, Index: i, Field: r.field, Reason: r.reason, Value: r.value})
		var zero T
		return zero, false
	}
	return v, true
}

// reader decodes RPC elements into messages. Missing optional elements
// read as zero values. Outside list entries, the first unparsable number or
// boolean is kept in err and fails the envelope; inside one (see collect),
// it drops that entry only.
type reader struct {
	method string
	err    error
	// inItem is set while a list entry is decoded; field, reason and
	// value describe the entry's first failure.
	inItem               bool
	field, reason, value string
	// skipped lists the entries left out; past maxSkipped only counted.
	skipped      []SkippedEntry
	skippedTotal int
}

// maxSkipped bounds the skipped entries an Envelope details; more are
// only counted (SkippedTotal), so a message of nothing but bad entries
// cannot make the decoder keep a record for each.
const maxSkipped = 64

func (r *reader) skip(s SkippedEntry) {
	r.skippedTotal++
	if len(r.skipped) < maxSkipped {
		r.skipped = append(r.skipped, s)
	}
}

func (r *reader) fail(field, kind, value string) {
	if r.err != nil {
		return
	}
	if r.inItem {
		// The envelope does not fail for it: build no error text.
		r.err = errSkipEntry
		r.field, r.reason, r.value = field, "invalid_"+kind, clip(value)
		if kind == "" {
			r.reason = "missing_" + strings.ToLower(field)
		}
		return
	}
	r.err = fmt.Errorf("decode %s: %s: invalid %s %q: %w", clip(r.method), field, kind, clip(value), ErrMalformed)
}

// missing marks the entry being decoded as lacking a required field.
func (r *reader) missing(field string) { r.fail(field, "", "") }

// errSkipEntry marks a list entry as malformed; it never leaves the package.
var errSkipEntry = errors.New("cwmp: malformed list entry")

// str returns the trimmed text of e's child name, "" when absent.
func (r *reader) str(e *etree.Element, name string) string {
	c := child(e, name)
	if c == nil {
		return ""
	}
	return strings.TrimSpace(c.Text())
}

func (r *reader) uint32(e *etree.Element, name string) uint32 {
	return r.parseUint32(name, r.str(e, name))
}

// parseUint32 reads s, the trimmed text of field name, as an unsignedInt.
func (r *reader) parseUint32(name, s string) uint32 {
	if s == "" {
		return 0
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		r.fail(name, "unsignedInt", s)
	}
	return uint32(v)
}

func (r *reader) int(e *etree.Element, name string) int {
	return r.parseInt(name, r.str(e, name))
}

// parseInt reads s, the trimmed text of field name, as an int.
func (r *reader) parseInt(name, s string) int {
	if s == "" {
		return 0
	}
	v, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		r.fail(name, "int", s)
	}
	return int(v)
}

func (r *reader) bool(e *etree.Element, name string) bool {
	return r.parseBool(name, r.str(e, name))
}

// parseBool reads s, the trimmed text of field name, as a boolean.
func (r *reader) parseBool(name, s string) bool {
	if s == "" {
		return false
	}
	v, err := ParseBool(s)
	if err != nil {
		// CPEs write booleans as counts too (<Writable>30</Writable>):
		// any integer is clear enough, non-zero being true.
		if n, nerr := strconv.ParseInt(s, 10, 64); nerr == nil {
			return n != 0
		}
		r.fail(name, "boolean", s)
	}
	return v
}

func (r *reader) time(e *etree.Element, name string) time.Time {
	return parseTimeLenient(r.str(e, name))
}

// strings reads a string array such as ParameterNames or MethodList.
func (r *reader) strings(e *etree.Element, name string) []string {
	return collect(r, name, child(e, name), func(it *etree.Element) string { return strings.TrimSpace(it.Text()) })
}

func (r *reader) parameterValues(e *etree.Element, name string) []ParameterValue {
	return collect(r, name, child(e, name), func(it *etree.Element) ParameterValue {
		pv := ParameterValue{Name: r.name(it), Type: TypeString}
		if v := child(it, "Value"); v != nil {
			// The value is kept byte-exact: whitespace can be meaningful
			// (an SSID, a password).
			pv.Value = v.Text()
			for _, at := range v.Attr {
				if at.Key == "type" && at.Space != "xmlns" {
					pv.Type = NormalizeType(at.Value)
					break
				}
			}
		}
		return pv
	})
}

// name reads a list entry's parameter Name. A leading "." (some stacks
// write ".InternetGatewayDevice.…") is dropped: the meaning is plain and
// the path would otherwise sit outside its tree. An entry without a name
// is left out: there is nothing to store it under.
func (r *reader) name(it *etree.Element) string {
	return r.parseName(r.str(it, "Name"))
}

// parseName reads s, the trimmed text of an entry's Name, as name does.
func (r *reader) parseName(s string) string {
	n := strings.TrimLeft(s, ".")
	if n == "" {
		r.missing("Name")
	}
	return n
}

func (r *reader) faultStruct(e *etree.Element) FaultStruct {
	return FaultStruct{Code: r.uint32(e, "FaultCode"), String: r.str(e, "FaultString")}
}

func (r *reader) opResult(it *etree.Element) OpResult {
	return OpResult{
		UUID:                 r.str(it, "UUID"),
		DeploymentUnitRef:    r.str(it, "DeploymentUnitRef"),
		Version:              r.str(it, "Version"),
		CurrentState:         r.str(it, "CurrentState"),
		Resolved:             r.bool(it, "Resolved"),
		ExecutionUnitRefList: r.str(it, "ExecutionUnitRefList"),
		StartTime:            r.time(it, "StartTime"),
		CompleteTime:         r.time(it, "CompleteTime"),
		Fault:                r.faultStruct(child(it, "Fault")),
	}
}

// structs visits the structs of a field that CPEs write either as one
// SOAP-ENC array element holding item structs or as the struct element
// repeated (DUStateChangeComplete Results). An element that directly holds
// one of the struct's fields is a struct itself; otherwise its children are.
func structs(e *etree.Element, name string, fields []string) []*etree.Element {
	var out []*etree.Element
	for _, t := range e.Child {
		c, ok := t.(*etree.Element)
		if !ok || c.Tag != name {
			continue
		}
		isStruct := false
		for _, f := range fields {
			if child(c, f) != nil {
				isStruct = true
				break
			}
		}
		if isStruct {
			out = append(out, c)
			continue
		}
		for _, t := range c.Child {
			if it, ok := t.(*etree.Element); ok {
				out = append(out, it)
			}
		}
	}
	return out
}

// opResultFields are OpResultStruct fields that tell a struct from an array.
var opResultFields = []string{"UUID", "DeploymentUnitRef", "Version", "CurrentState", "Resolved", "Fault"}

// duOperations reads ChangeDUState Operations in the XSD form (repeated
// <Operations xsi:type="cwmp:InstallOpStruct">) and in the array form some
// stacks use (<Operations><InstallOpStruct>…</InstallOpStruct></Operations>).
func (r *reader) duOperations(e *etree.Element) []DUOperation {
	var ops []DUOperation
	for _, t := range e.Child {
		c, ok := t.(*etree.Element)
		if !ok || c.Tag != "Operations" {
			continue
		}
		if kind, ok := opKind(xsiType(c)); ok {
			ops = append(ops, r.duOperation(c, kind))
			continue
		}
		nested := false
		for _, t := range c.Child {
			op, ok := t.(*etree.Element)
			if !ok {
				continue
			}
			if kind, ok := opKind(op.Tag); ok {
				ops = append(ops, r.duOperation(op, kind))
				nested = true
			}
		}
		if !nested {
			// No operation type anywhere: keep the fields, leave Kind empty.
			ops = append(ops, r.duOperation(c, ""))
		}
	}
	return ops
}

func (r *reader) duOperation(e *etree.Element, kind string) DUOperation {
	return DUOperation{
		Kind:            kind,
		URL:             r.str(e, "URL"),
		UUID:            r.str(e, "UUID"),
		Username:        r.str(e, "Username"),
		Password:        r.str(e, "Password"),
		Version:         r.str(e, "Version"),
		ExecutionEnvRef: r.str(e, "ExecutionEnvRef"),
	}
}

// xsiType returns the value of e's type attribute (xsi:type under any
// prefix), or "".
func xsiType(e *etree.Element) string {
	for _, a := range e.Attr {
		if a.Key == "type" && a.Space != "xmlns" {
			return strings.TrimSpace(a.Value)
		}
	}
	return ""
}

// opKind turns "cwmp:InstallOpStruct" or "InstallOpStruct" into "Install".
// ok is false when t does not name an operation struct.
func opKind(t string) (kind string, ok bool) {
	if i := strings.IndexByte(t, ':'); i >= 0 {
		t = t[i+1:]
	}
	return strings.CutSuffix(t, "OpStruct")
}

// message fills msg, a zero value from newMessage, from its element e.
func (r *reader) message(e *etree.Element, msg Message) {
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
		m.MethodList = r.strings(e, "MethodList")
	case *SetParameterValues:
		m.ParameterList = r.parameterValues(e, "ParameterList")
		m.ParameterKey = r.str(e, "ParameterKey")
	case *SetParameterValuesResponse:
		m.Status = r.int(e, "Status")
	case *GetParameterValues:
		m.ParameterNames = r.strings(e, "ParameterNames")
	case *GetParameterValuesResponse:
		m.ParameterList = r.parameterValues(e, "ParameterList")
	case *GetParameterNames:
		m.ParameterPath = r.str(e, "ParameterPath")
		m.NextLevel = r.bool(e, "NextLevel")
	case *GetParameterNamesResponse:
		m.ParameterList = collect(r, "ParameterList", child(e, "ParameterList"), func(it *etree.Element) ParameterInfo {
			return ParameterInfo{Name: r.name(it), Writable: r.bool(it, "Writable")}
		})
	case *SetParameterAttributes:
		m.ParameterList = collect(r, "ParameterList", child(e, "ParameterList"), func(it *etree.Element) SetParameterAttribute {
			return SetParameterAttribute{
				Name:               r.str(it, "Name"),
				NotificationChange: r.bool(it, "NotificationChange"),
				Notification:       r.int(it, "Notification"),
				AccessListChange:   r.bool(it, "AccessListChange"),
				AccessList:         r.strings(it, "AccessList"),
			}
		})
	case *GetParameterAttributes:
		m.ParameterNames = r.strings(e, "ParameterNames")
	case *GetParameterAttributesResponse:
		m.ParameterList = collect(r, "ParameterList", child(e, "ParameterList"), func(it *etree.Element) ParameterAttribute {
			return ParameterAttribute{
				Name:         r.name(it),
				Notification: r.int(it, "Notification"),
				AccessList:   r.strings(it, "AccessList"),
			}
		})
	case *AddObject:
		m.ObjectName = r.str(e, "ObjectName")
		m.ParameterKey = r.str(e, "ParameterKey")
	case *AddObjectResponse:
		m.InstanceNumber = r.uint32(e, "InstanceNumber")
		m.Status = r.int(e, "Status")
	case *DeleteObject:
		m.ObjectName = r.str(e, "ObjectName")
		m.ParameterKey = r.str(e, "ParameterKey")
	case *DeleteObjectResponse:
		m.Status = r.int(e, "Status")
	case *Reboot:
		m.CommandKey = r.str(e, "CommandKey")
	case *Download:
		m.CommandKey = r.str(e, "CommandKey")
		m.FileType = r.str(e, "FileType")
		m.URL = r.str(e, "URL")
		m.Username = r.str(e, "Username")
		m.Password = r.str(e, "Password")
		m.FileSize = r.uint32(e, "FileSize")
		m.TargetFileName = r.str(e, "TargetFileName")
		m.DelaySeconds = r.uint32(e, "DelaySeconds")
		m.SuccessURL = r.str(e, "SuccessURL")
		m.FailureURL = r.str(e, "FailureURL")
	case *DownloadResponse:
		m.Status = r.int(e, "Status")
		m.StartTime = r.time(e, "StartTime")
		m.CompleteTime = r.time(e, "CompleteTime")
	case *Upload:
		m.CommandKey = r.str(e, "CommandKey")
		m.FileType = r.str(e, "FileType")
		m.URL = r.str(e, "URL")
		m.Username = r.str(e, "Username")
		m.Password = r.str(e, "Password")
		m.DelaySeconds = r.uint32(e, "DelaySeconds")
	case *UploadResponse:
		m.Status = r.int(e, "Status")
		m.StartTime = r.time(e, "StartTime")
		m.CompleteTime = r.time(e, "CompleteTime")
	case *ScheduleInform:
		m.DelaySeconds = r.uint32(e, "DelaySeconds")
		m.CommandKey = r.str(e, "CommandKey")
	case *ScheduleDownload:
		m.CommandKey = r.str(e, "CommandKey")
		m.FileType = r.str(e, "FileType")
		m.URL = r.str(e, "URL")
		m.Username = r.str(e, "Username")
		m.Password = r.str(e, "Password")
		m.FileSize = r.uint32(e, "FileSize")
		m.TargetFileName = r.str(e, "TargetFileName")
		m.TimeWindowList = collect(r, "TimeWindowList", child(e, "TimeWindowList"), func(it *etree.Element) TimeWindow {
			return TimeWindow{
				WindowStart: r.uint32(it, "WindowStart"),
				WindowEnd:   r.uint32(it, "WindowEnd"),
				WindowMode:  r.str(it, "WindowMode"),
				UserMessage: r.str(it, "UserMessage"),
				MaxRetries:  r.int(it, "MaxRetries"),
			}
		})
	case *CancelTransfer:
		m.CommandKey = r.str(e, "CommandKey")
	case *GetQueuedTransfersResponse:
		m.TransferList = collect(r, "TransferList", child(e, "TransferList"), func(it *etree.Element) QueuedTransfer {
			return QueuedTransfer{
				CommandKey: r.str(it, "CommandKey"),
				State:      r.int(it, "State"),
			}
		})
	case *GetAllQueuedTransfersResponse:
		m.TransferList = collect(r, "TransferList", child(e, "TransferList"), func(it *etree.Element) AllQueuedTransfer {
			return AllQueuedTransfer{
				CommandKey:     r.str(it, "CommandKey"),
				State:          r.int(it, "State"),
				IsDownload:     r.bool(it, "IsDownload"),
				FileType:       r.str(it, "FileType"),
				FileSize:       r.uint32(it, "FileSize"),
				TargetFileName: r.str(it, "TargetFileName"),
			}
		})
	case *ChangeDUState:
		m.Operations = r.duOperations(e)
		m.CommandKey = r.str(e, "CommandKey")
	case *SetVouchers:
		m.VoucherList = r.strings(e, "VoucherList")
	case *GetOptions:
		m.OptionName = r.str(e, "OptionName")
	case *GetOptionsResponse:
		m.OptionList = collect(r, "OptionList", child(e, "OptionList"), func(it *etree.Element) Option {
			return Option{
				OptionName:     r.str(it, "OptionName"),
				VoucherSN:      r.uint32(it, "VoucherSN"),
				State:          r.uint32(it, "State"),
				Mode:           r.int(it, "Mode"),
				StartDate:      r.time(it, "StartDate"),
				ExpirationDate: r.time(it, "ExpirationDate"),
				IsTransferable: r.int(it, "IsTransferable"),
			}
		})
	case *Inform:
		d := child(e, "DeviceId")
		m.DeviceId = DeviceID{
			Manufacturer: r.str(d, "Manufacturer"),
			OUI:          r.str(d, "OUI"),
			ProductClass: r.str(d, "ProductClass"),
			SerialNumber: r.str(d, "SerialNumber"),
		}
		m.Event = collect(r, "Event", child(e, "Event"), func(it *etree.Element) Event {
			code := CanonicalEventCode(r.str(it, "EventCode"))
			if code == "" {
				r.missing("EventCode")
			}
			return Event{Code: code, CommandKey: r.str(it, "CommandKey")}
		})
		m.MaxEnvelopes = r.uint32(e, "MaxEnvelopes")
		m.CurrentTime = r.time(e, "CurrentTime")
		m.RetryCount = r.uint32(e, "RetryCount")
		m.ParameterList = r.parameterValues(e, "ParameterList")
	case *InformResponse:
		m.MaxEnvelopes = r.uint32(e, "MaxEnvelopes")
	case *TransferComplete:
		m.CommandKey = r.str(e, "CommandKey")
		m.FaultStruct = r.faultStruct(child(e, "FaultStruct"))
		m.StartTime = r.time(e, "StartTime")
		m.CompleteTime = r.time(e, "CompleteTime")
	case *AutonomousTransferComplete:
		m.AnnounceURL = r.str(e, "AnnounceURL")
		m.TransferURL = r.str(e, "TransferURL")
		m.IsDownload = r.bool(e, "IsDownload")
		m.FileType = r.str(e, "FileType")
		m.FileSize = r.uint32(e, "FileSize")
		m.TargetFileName = r.str(e, "TargetFileName")
		m.FaultStruct = r.faultStruct(child(e, "FaultStruct"))
		m.StartTime = r.time(e, "StartTime")
		m.CompleteTime = r.time(e, "CompleteTime")
	case *RequestDownload:
		m.FileType = r.str(e, "FileType")
		m.FileTypeArg = collect(r, "FileTypeArg", child(e, "FileTypeArg"), func(it *etree.Element) Arg {
			return Arg{Name: r.str(it, "Name"), Value: r.str(it, "Value")}
		})
	case *DUStateChangeComplete:
		if els := structs(e, "Results", opResultFields); len(els) > 0 {
			m.Results = make([]OpResult, 0, len(els))
			for i, it := range els {
				if v, ok := item(r, "Results", i, func() OpResult { return r.opResult(it) }); ok {
					m.Results = append(m.Results, v)
				}
			}
		}
		m.CommandKey = r.str(e, "CommandKey")
	case *AutonomousDUStateChangeComplete:
		if els := structs(e, "Results", opResultFields); len(els) > 0 {
			m.Results = make([]AutonOpResult, 0, len(els))
			for i, it := range els {
				v, ok := item(r, "Results", i, func() AutonOpResult {
					return AutonOpResult{OpResult: r.opResult(it), OperationPerformed: r.str(it, "OperationPerformed")}
				})
				if ok {
					m.Results = append(m.Results, v)
				}
			}
		}
	case *Kicked:
		m.Command = r.str(e, "Command")
		m.Referer = r.str(e, "Referer")
		m.Arg = r.str(e, "Arg")
		m.Next = r.str(e, "Next")
	case *KickedResponse:
		m.NextURL = r.str(e, "NextURL")
	case *Fault:
		r.fault(e, m)
	default:
		// newMessage returned a type this switch does not know: a codec bug,
		// reported rather than silently decoded as empty.
		r.err = fmt.Errorf("decode %s: no decoder for %T: %w", clip(r.method), msg, ErrUnknownMethod)
	}
}

// fault reads a SOAP Fault. faultcode loses its prefix ("SOAP-ENV:Client" →
// "Client"). A fault without a cwmp:Fault detail is read as 9002 Internal
// error carrying the faultstring, so callers always get a CWMP code.
func (r *reader) fault(e *etree.Element, f *Fault) {
	code := strings.TrimSpace(childText(childFold(e, "faultcode")))
	if i := strings.LastIndexByte(code, ':'); i >= 0 {
		code = code[i+1:]
	}
	f.SOAPCode = code
	f.SOAPString = strings.TrimSpace(childText(childFold(e, "faultstring")))
	detail := child(childFold(e, "detail"), "Fault")
	if detail == nil {
		f.Code = FaultInternalError
		f.String = f.SOAPString
		return
	}
	f.Code = r.uint32(detail, "FaultCode")
	f.String = r.str(detail, "FaultString")
	i := -1
	for _, t := range detail.Child {
		c, ok := t.(*etree.Element)
		if !ok || c.Tag != "SetParameterValuesFault" {
			continue
		}
		i++
		v, ok := item(r, "SetParameterValuesFault", i, func() SetParameterValuesFault {
			return SetParameterValuesFault{
				ParameterName: r.str(c, "ParameterName"),
				FaultCode:     r.uint32(c, "FaultCode"),
				FaultString:   r.str(c, "FaultString"),
			}
		})
		if ok {
			f.SetParameterValuesFaults = append(f.SetParameterValuesFaults, v)
		}
	}
}

// childText is e.Text() for a possibly nil e.
func childText(e *etree.Element) string {
	if e == nil {
		return ""
	}
	return e.Text()
}

// setHeaderField stores the SOAP header field named lname (its local name,
// lower case) other than ID, whose first occurrence the callers keep; an
// unknown field or an unreadable value is ignored, as CPEs send both.
func setHeaderField(env *Envelope, lname, v string) {
	switch lname {
	case "holdrequests":
		env.HoldRequests, _ = ParseBool(v)
	case "nomorerequests":
		env.NoMoreRequests, _ = ParseBool(v)
	case "sessiontimeout":
		n, _ := strconv.ParseUint(v, 10, 32)
		env.SessionTimeout = uint32(n)
	case "supportedcwmpversions":
		env.SupportedCWMPVersions = v
	case "usecwmpversion":
		env.UseCWMPVersion = v
	}
}
