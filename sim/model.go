package sim

import (
	"bufio"
	"bytes"
	"embed"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
)

//go:embed models/*.txt
var modelFS embed.FS

// Model names accepted by LoadModel and Config.Model.
const (
	ModelTR098 = "tr098"
	ModelTR181 = "tr181"
	// ModelVoIP is a two-line SIP adapter: TR-098 root with TR-104
	// VoiceService, as most ATAs and VoIP phones report themselves.
	ModelVoIP = "voip"
	// ModelMixed alternates tr098 and tr181 (Config.Model).
	ModelMixed = "mixed"
)

// liveKind marks a parameter whose value is computed at every read.
type liveKind uint8

const (
	liveNone   liveKind = iota
	liveNow             // "{now}": the current time
	liveUptime          // "{uptime}": seconds since the device booted
)

// ErrUnknownModel is returned for a model name that has no embedded template.
var ErrUnknownModel = errors.New("sim: unknown data model")

// typeNames maps the template's short type names to xsd type names.
var typeNames = map[string]string{
	"string":       cwmp.TypeString,
	"int":          cwmp.TypeInt,
	"unsignedInt":  cwmp.TypeUnsignedInt,
	"boolean":      cwmp.TypeBoolean,
	"dateTime":     cwmp.TypeDateTime,
	"base64":       cwmp.TypeBase64,
	"hexBinary":    cwmp.TypeHexBinary,
	"long":         cwmp.TypeLong,
	"unsignedLong": cwmp.TypeUnsignedLong,
}

// gnode is one node of a model's generic schema: names still carry "{i}"
// where a table's instance number goes. Concrete nodes of every device
// point at these, so types, flags and default values are stored once per
// model rather than once per device.
type gnode struct {
	name     string // generic full name, e.g. "X.Host.{i}.IPAddress"
	seg      string // last path segment ("IPAddress", "Host", "{i}")
	typ      string // xsd type; "" for objects
	object   bool
	instance bool // the "{i}." placeholder of a table
	writable bool // parameters: SPV allowed; instances: Add/DeleteObject allowed
	forced   bool // sent in every Inform
	active   bool // active notification by default
	secret   bool // reads back as ""
	live     liveKind
	value    string
	count    int // instances created by default (instance placeholders only)
	parent   int32
	children []int32
}

// Model is a compiled data-model template: the generic schema plus the
// default concrete layout that every device of the model starts from.
type Model struct {
	// Name is the model's name ("tr098", "tr181" or "voip").
	Name string
	// Root is the root object, "InternetGatewayDevice." or "Device.".
	Root string
	// Manufacturer, OUI and ProductClass form the devices' DeviceId.
	Manufacturer string
	OUI          string
	ProductClass string
	serialPrefix string

	gen    []gnode
	genIdx map[string]int32
	layout *layout
	// baseVals are the default layout's values that no device's
	// identity changes (constants, instance numbers, the model's names),
	// "" elsewhere; perDevice are the nodes whose values Tree.Reset
	// generates for each device. A fleet's devices are built by copying
	// one and generating the other (~60 of ~240 nodes).
	baseVals  []string
	perDevice []int32
	keyGen    int32 // generic index of ManagementServer.ParameterKey
	forced    []int32
	special   map[string]int32 // short names ("SoftwareVersion", ...) → generic index
}

var (
	modelsMu sync.Mutex
	models   = map[string]*Model{}
)

// LoadModel returns the compiled embedded model "tr098", "tr181" or
// "voip". Models are compiled once and shared by every device.
func LoadModel(name string) (*Model, error) {
	modelsMu.Lock()
	defer modelsMu.Unlock()
	if m, ok := models[name]; ok {
		return m, nil
	}
	data, err := modelFS.ReadFile("models/" + name + ".txt")
	if err != nil {
		return nil, fmt.Errorf("%w %q: want tr098, tr181 or voip", ErrUnknownModel, name)
	}
	m, err := ParseModel(name, data)
	if err != nil {
		return nil, err
	}
	models[name] = m
	return m, nil
}

// ParseModel compiles a template in the text format documented at the top
// of models/tr098.txt.
func ParseModel(name string, data []byte) (*Model, error) {
	m := &Model{Name: name, genIdx: map[string]int32{}, keyGen: -1, special: map[string]int32{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if line[0] == '@' {
			k, v, _ := strings.Cut(line[1:], " ")
			v = strings.TrimSpace(v)
			switch k {
			case "root":
				m.Root = v
			case "manufacturer":
				m.Manufacturer = v
			case "oui":
				m.OUI = v
			case "productclass":
				m.ProductClass = v
			case "serialprefix":
				m.serialPrefix = v
			default:
				return nil, fmt.Errorf("model %s line %d: unknown directive @%s", name, lineNo, k)
			}
			continue
		}
		if err := m.addEntry(line); err != nil {
			return nil, fmt.Errorf("model %s line %d: %w", name, lineNo, err)
		}
	}
	if m.Root == "" || len(m.gen) == 0 {
		return nil, fmt.Errorf("model %s: no @root or no entries", name)
	}
	if i, ok := m.genIdx[m.Root+"ManagementServer.ParameterKey"]; ok {
		m.keyGen = i
	}
	for i, g := range m.gen {
		if g.forced {
			m.forced = append(m.forced, int32(i))
		}
	}
	for _, s := range []string{
		"DeviceInfo.SoftwareVersion", "ManagementServer.PeriodicInformInterval",
		"ManagementServer.PeriodicInformEnable", "ManagementServer.PeriodicInformTime",
		"ManagementServer.ConnectionRequestUsername",
		"ManagementServer.ConnectionRequestPassword", "ManagementServer.ConnectionRequestURL",
		"ManagementServer.Username", "ManagementServer.Password", "ManagementServer.URL",
		"ManagementServer.UDPConnectionRequestAddress", "ManagementServer.STUNEnable",
		"ManagementServer.NATDetected", "DeviceInfo.SerialNumber",
	} {
		if i, ok := m.genIdx[m.Root+s]; ok {
			m.special[s] = i
		}
	}
	m.layout = m.defaultLayout()
	m.baseVals = make([]string, len(m.layout.nodes))
	ctx := genCtx{m: m}
	for i, n := range m.layout.nodes {
		g := &m.gen[n.gen]
		if g.object || g.value == "" {
			continue
		}
		if perDevice(g.value) {
			m.perDevice = append(m.perDevice, int32(i))
			continue
		}
		ctx.path, ctx.inst = n.name, n.inst
		m.baseVals[i] = ctx.expand(g.value)
	}
	return m, nil
}

// perDevice reports whether template value v has a generator whose value
// depends on the device (its identity, its hash, the time), not only on
// the model and the node.
func perDevice(v string) bool {
	for {
		i := strings.IndexByte(v, '{')
		if i < 0 {
			return false
		}
		j := strings.IndexByte(v[i:], '}')
		if j < 0 {
			return false
		}
		name, _, _ := strings.Cut(v[i+1:i+j], ":")
		switch name {
		case "i", "oui", "productclass", "manufacturer":
		default:
			return true
		}
		v = v[i+j+1:]
	}
}

// addEntry adds one template line and any implied parent objects.
func (m *Model) addEntry(line string) error {
	fields := strings.SplitN(line, " ", 4)
	if len(fields) < 3 {
		return fmt.Errorf("want PATH TYPE FLAGS [VALUE]: %q", line)
	}
	path, typ, flags := fields[0], fields[1], fields[2]
	value := ""
	if len(fields) == 4 {
		value = strings.TrimSpace(fields[3])
	}
	if !strings.HasPrefix(path, m.Root) {
		return fmt.Errorf("%s is outside root %s", path, m.Root)
	}
	g := gnode{name: path, value: value}
	if typ == "object" {
		if !strings.HasSuffix(path, ".") {
			return fmt.Errorf("object %s must end with '.'", path)
		}
		g.object = true
		g.instance = strings.HasSuffix(path, ".{i}.")
		if g.instance {
			n, err := strconv.Atoi(value)
			if err != nil || n < 0 {
				return fmt.Errorf("table %s: default instance count %q is not a number", path, value)
			}
			g.count = n
			g.value = ""
		}
	} else {
		xt, ok := typeNames[typ]
		if !ok {
			return fmt.Errorf("%s: unknown type %q", path, typ)
		}
		if strings.HasSuffix(path, ".") {
			return fmt.Errorf("parameter %s must not end with '.'", path)
		}
		g.typ = xt
		switch value {
		case "{now}":
			g.live = liveNow
		case "{uptime}":
			g.live = liveUptime
		}
	}
	switch flags[0] {
	case 'R':
	case 'W':
		g.writable = true
	default:
		return fmt.Errorf("%s: flags %q must start with R or W", path, flags)
	}
	for _, f := range flags[1:] {
		switch f {
		case 'F':
			g.forced = true
		case 'A':
			g.active = true
		case 'S':
			g.secret = true
		default:
			return fmt.Errorf("%s: unknown flag %q", path, f)
		}
	}
	if _, dup := m.genIdx[path]; dup {
		if g.object {
			// An explicit table line after an implied one: take its flags.
			i := m.genIdx[path]
			m.gen[i].writable, m.gen[i].count = g.writable, g.count
			return nil
		}
		return fmt.Errorf("duplicate entry %s", path)
	}
	parent := m.ensureObject(parentPath(path))
	g.parent = parent
	g.seg = lastSegment(path)
	m.gen = append(m.gen, g)
	idx := int32(len(m.gen) - 1)
	m.genIdx[path] = idx
	if parent >= 0 {
		m.gen[parent].children = append(m.gen[parent].children, idx)
	}
	return nil
}

// ensureObject returns the generic index of object path, creating it and
// its ancestors (read-only, not a table) when missing.
func (m *Model) ensureObject(path string) int32 {
	if path == "" {
		return -1
	}
	if i, ok := m.genIdx[path]; ok {
		return i
	}
	parent := m.ensureObject(parentPath(path))
	g := gnode{name: path, seg: lastSegment(path), object: true, parent: parent}
	if strings.HasSuffix(path, ".{i}.") {
		g.instance = true
		g.count = 1
	}
	m.gen = append(m.gen, g)
	idx := int32(len(m.gen) - 1)
	m.genIdx[path] = idx
	if parent >= 0 {
		m.gen[parent].children = append(m.gen[parent].children, idx)
	}
	return idx
}

// parentPath returns the object containing path ("A.B.C" → "A.B.",
// "A.B." → "A.", "A." → "").
func parentPath(path string) string {
	p := strings.TrimSuffix(path, ".")
	i := strings.LastIndexByte(p, '.')
	if i < 0 {
		return ""
	}
	return p[:i+1]
}

// lastSegment returns the last name segment of path, without dots.
func lastSegment(path string) string {
	p := strings.TrimSuffix(path, ".")
	return p[strings.LastIndexByte(p, '.')+1:]
}

// ---- value generators ----

// genCtx is what a default value may depend on: the device identity and
// the concrete name being generated.
type genCtx struct {
	m      *Model
	seed   int64
	index  int
	serial string
	crURL  string
	path   string
	inst   uint32 // innermost instance number in path
}

// hash returns a deterministic 64-bit value for (seed, index, path, k):
// FNV-1a over the three numbers (8 bytes big-endian each, k last) and the
// path between them, written out so that a device's ~60 generated values
// cost no allocation (hash/fnv's was a third of building a fleet).
func (c *genCtx) hash(k int) uint64 {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
	)
	h := uint64(offset64)
	word := func(v uint64) {
		for s := 56; s >= 0; s -= 8 {
			h ^= uint64(byte(v >> s))
			h *= prime64
		}
	}
	word(uint64(c.seed))
	word(uint64(c.index))
	for i := 0; i < len(c.path); i++ {
		h ^= uint64(c.path[i])
		h *= prime64
	}
	word(uint64(k))
	// splitmix64 finaliser: FNV's low bits are poorly mixed for short keys.
	z := h + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// serialFor returns a device's serial number: unique per index, varying
// with the seed.
func serialFor(m *Model, seed int64, index int) string {
	return fmt.Sprintf("%s%04X%08d", m.serialPrefix, uint16(seed), index)
}

// crPassword returns the default connection-request password.
func crPassword(seed int64, index int) string {
	c := genCtx{seed: seed, index: index, path: "cr-pass"}
	return fmt.Sprintf("%012x", c.hash(0)>>16)
}

// upperHex are the digits of generate's MACs (encoding/hex writes lower case).
const upperHex = "0123456789ABCDEF"

// expand evaluates the generators in a template value.
func (c *genCtx) expand(v string) string {
	if !strings.Contains(v, "{") {
		return v
	}
	var sb strings.Builder
	k := 0
	for {
		i := strings.IndexByte(v, '{')
		if i < 0 {
			sb.WriteString(v)
			return sb.String()
		}
		j := strings.IndexByte(v[i:], '}')
		if j < 0 {
			sb.WriteString(v)
			return sb.String()
		}
		sb.WriteString(v[:i])
		sb.WriteString(c.generate(v[i+1:i+j], k))
		k++
		v = v[i+j+1:]
	}
}

// generate evaluates one generator expression (without braces).
func (c *genCtx) generate(expr string, k int) string {
	name, arg, _ := strings.Cut(expr, ":")
	switch name {
	case "serial":
		return c.serial
	case "oui":
		return c.m.OUI
	case "productclass":
		return c.m.ProductClass
	case "manufacturer":
		return c.m.Manufacturer
	case "index":
		return strconv.Itoa(c.index)
	case "i":
		return strconv.FormatUint(uint64(c.inst), 10)
	case "cr-url":
		return c.crURL
	case "cr-user":
		return c.serial
	case "cr-pass":
		return crPassword(c.seed, c.index)
	case "now":
		return time.Now().UTC().Format(time.RFC3339)
	case "mac":
		h := c.hash(k)
		oui := c.m.OUI
		if len(oui) != 6 {
			oui = "020000"
		}
		b := make([]byte, 0, 17)
		b = append(b, oui[0:2]...)
		b = append(b, ':')
		b = append(b, oui[2:4]...)
		b = append(b, ':')
		b = append(b, oui[4:6]...)
		for _, x := range [3]byte{byte(h), byte(h >> 8), byte(h >> 16)} {
			b = append(b, ':', upperHex[x>>4], upperHex[x&15])
		}
		return string(b)
	case "hex":
		n, err := strconv.Atoi(arg)
		if err != nil || n <= 0 || n > 32 {
			n = 8
		}
		var raw [16]byte
		binary.BigEndian.PutUint64(raw[:8], c.hash(k))
		binary.BigEndian.PutUint64(raw[8:], c.hash(k+1000))
		return hex.EncodeToString(raw[:])[:n]
	case "int":
		lo, hi, _ := strings.Cut(arg, "-")
		a, err1 := strconv.ParseInt(lo, 10, 64)
		b, err2 := strconv.ParseInt(hi, 10, 64)
		if err1 != nil || err2 != nil || b < a {
			return "0"
		}
		return strconv.FormatInt(a+int64(c.hash(k)%uint64(b-a+1)), 10)
	case "ip":
		p, err := netip.ParsePrefix(arg)
		if err != nil || !p.Addr().Is4() {
			return "0.0.0.0"
		}
		base := p.Addr().As4()
		b := binary.BigEndian.Uint32(base[:])
		size := uint32(1) << (32 - p.Bits())
		off := uint32(c.hash(k) % uint64(size))
		if size > 2 && off == 0 {
			off = 1
		}
		var out [4]byte
		binary.BigEndian.PutUint32(out[:], b+off)
		return netip.AddrFrom4(out).String()
	}
	return "{" + expr + "}"
}

// ErrNoSuchParameter is returned by Tree.SetLocal for an unknown name.
var ErrNoSuchParameter = errors.New("sim: no such parameter")
