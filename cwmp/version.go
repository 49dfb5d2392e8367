package cwmp

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Namespace URIs.
//
// CWMP 1.3 and 1.4 officially live in the cwmp-1-2 namespace (cwmp-1-3.xsd
// and cwmp-1-4.xsd both declare urn:dslforum-org:cwmp-1-2); NS13 and NS14
// exist because some stacks emit them anyway and must be understood.
const (
	SOAPEnvNS = "http://schemas.xmlsoap.org/soap/envelope/"
	NS10      = "urn:dslforum-org:cwmp-1-0"
	NS11      = "urn:dslforum-org:cwmp-1-1"
	NS12      = "urn:dslforum-org:cwmp-1-2"
	NS13      = "urn:dslforum-org:cwmp-1-3"
	NS14      = "urn:dslforum-org:cwmp-1-4"
)

// Versions lists every CWMP protocol version this package speaks, lowest first.
var Versions = []string{"1.0", "1.1", "1.2", "1.3", "1.4"}

// ErrVersionIncompatible means the ACS shares no CWMP version with the CPE.
// NegotiateVersion returns it joined with a *Fault 8006 to send back.
var ErrVersionIncompatible = errors.New("cwmp: ACS version incompatible with CPE")

const nsPrefix = "urn:dslforum-org:cwmp-"

// NamespaceForVersion returns the official namespace URI for a CWMP version
// ("1.0" → NS10, "1.1" → NS11, "1.2"–"1.4" → NS12), or "" for an unknown
// version. Replies to a CPE should echo the CPE's own URI instead; this is
// for messages the ACS originates.
func NamespaceForVersion(version string) string {
	switch version {
	case "1.0":
		return NS10
	case "1.1":
		return NS11
	case "1.2", "1.3", "1.4":
		return NS12
	}
	return ""
}

// versionFromNamespace maps a namespace URI to a version. Any
// urn:dslforum-org:cwmp-1-N is accepted (case-insensitive, surrounding
// space ignored) because real stacks emit cwmp-1-3 and cwmp-1-4 too; an
// empty namespace is read as 1.0, the version that never needed one. The
// shared 1-2 namespace means 1.3 when the CPE sent SessionTimeout, the only
// on-the-wire hint of 1.3.
func versionFromNamespace(ns string, sessionTimeout bool) (string, bool) {
	ns = strings.TrimSpace(ns)
	if ns == "" {
		return "1.0", true
	}
	if len(ns) <= len(nsPrefix) || !strings.EqualFold(ns[:len(nsPrefix)], nsPrefix) {
		return "", false
	}
	rest := ns[len(nsPrefix):]
	major, minor, ok := strings.Cut(rest, "-")
	if !ok || major != "1" {
		return "", false
	}
	n, err := strconv.Atoi(minor)
	if err != nil || n < 0 || n > 99 {
		return "", false
	}
	if n == 2 && sessionTimeout {
		n = 3
	}
	return "1." + strconv.Itoa(n), true
}

// versionKey orders "major.minor" strings numerically; ok is false for
// anything else.
func versionKey(v string) (int, bool) {
	major, minor, ok := strings.Cut(strings.TrimSpace(v), ".")
	if !ok {
		return 0, false
	}
	ma, err1 := strconv.Atoi(major)
	mi, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil || ma < 0 || mi < 0 || ma > 99 || mi > 99 {
		return 0, false
	}
	return ma*100 + mi, true
}

// canonicalVersion normalizes " 1.4 " or "01.4" to "1.4".
func canonicalVersion(v string) (string, bool) {
	k, ok := versionKey(v)
	if !ok {
		return "", false
	}
	return strconv.Itoa(k/100) + "." + strconv.Itoa(k%100), true
}

// NegotiateVersion picks the CWMP version of a session from its Inform
// envelope (TR-069 A6 §3.7.4): from the namespace for 1.0–1.3, and, when the
// CPE sent SupportedCWMPVersions (1.4), the highest version both sides
// support, which the ACS must announce in UseCWMPVersion (returned as
// useHeader; empty when no header is due). supported empty means Versions.
//
// Without SupportedCWMPVersions, a CPE speaking a newer version than the
// ACS knows is answered in the ACS's highest version (CWMP versions are
// backward compatible); one speaking an older version than the ACS
// supports gets fault 8006. The error then is ErrVersionIncompatible joined
// with the *Fault to send (errors.As finds it).
func NegotiateVersion(env *Envelope, supported []string) (version string, useHeader string, err error) {
	if env == nil {
		return "", "", fmt.Errorf("negotiate version: %w", ErrBadSessionState)
	}
	if len(supported) == 0 {
		supported = Versions
	}
	acs := make(map[int]string, len(supported))
	maxACS, minACS := -1, -1
	for _, v := range supported {
		k, ok := versionKey(v)
		if !ok {
			continue
		}
		cv, _ := canonicalVersion(v)
		acs[k] = cv
		if maxACS < 0 || k > maxACS {
			maxACS = k
		}
		if minACS < 0 || k < minACS {
			minACS = k
		}
	}
	if maxACS < 0 {
		return "", "", incompatible("the ACS supports no valid version %q", supported)
	}

	if strings.TrimSpace(env.SupportedCWMPVersions) != "" {
		best := -1
		for _, v := range strings.Split(env.SupportedCWMPVersions, ",") {
			k, ok := versionKey(v)
			if !ok {
				continue
			}
			if _, common := acs[k]; common && k > best {
				best = k
			}
		}
		if best < 0 {
			return "", "", incompatible("CPE supports %q, ACS supports %q", env.SupportedCWMPVersions, supported)
		}
		return acs[best], acs[best], nil
	}

	v, ok := versionFromNamespace(env.Namespace, env.SessionTimeout > 0)
	if !ok {
		return "", "", incompatible("unrecognized CWMP namespace %q", env.Namespace)
	}
	k, _ := versionKey(v)
	switch {
	case acs[k] != "":
		return acs[k], "", nil
	case k > maxACS:
		return acs[maxACS], "", nil
	case k < minACS:
		return "", "", incompatible("CPE speaks %s, ACS supports %q", v, supported)
	}
	// A gap in the ACS's list (say 1.0 and 1.2 but not 1.1): the highest
	// supported version below the CPE's is still one the CPE understands.
	best := -1
	for ak := range acs {
		if ak < k && ak > best {
			best = ak
		}
	}
	return acs[best], "", nil
}

func incompatible(format string, args ...any) error {
	f := NewFault(FaultACSVersionIncompatible, "")
	return fmt.Errorf("negotiate version: "+format+": %w", append(args, errors.Join(ErrVersionIncompatible, f))...)
}
