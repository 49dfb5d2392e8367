package fleet

import (
	"slices"
	"strings"
)

// IsSecretParameter reports whether the value of the parameter path is a
// secret an API must not show, nor let a client filter on (a match would
// reveal the value one guess at a time). It is the one rule both the edge's
// and the core's APIs apply. It looks only at the last path segment, so it
// is the same for TR-098 and TR-181 and for vendor (X_...) extensions:
//
//   - it ends in "Password", "Passphrase" or "Secret" (Password,
//     ConnectionRequestPassword, KeyPassphrase, X_ACME_AdminPassword, ...);
//   - or it ends in "Key" or "PSK" and the path is under a Wi-Fi or
//     security object (a segment "WLANConfiguration", "WiFi" or
//     "Security"): PreSharedKey, WEPKey, KeyPassphrase, X_..._PSK.
//
// Stores keep the real value: tasks must still send it.
func IsSecretParameter(path string) bool {
	if path == "" || strings.HasSuffix(path, ".") { // objects have no value
		return false
	}
	last := path[strings.LastIndexByte(path, '.')+1:]
	for _, sfx := range [...]string{"Password", "Passphrase", "Secret"} {
		if strings.HasSuffix(last, sfx) {
			return true
		}
	}
	if !strings.HasSuffix(last, "Key") && !strings.HasSuffix(last, "PSK") {
		return false
	}
	for _, seg := range [...]string{".WLANConfiguration.", ".WiFi.", ".Security."} {
		if strings.Contains(path, seg) {
			return true
		}
	}
	return false
}

// RedactTask returns t as an API may show it: the values of secret
// parameters (in ParameterValues and in the result) and the transfer
// password are "", and redacted names what was hidden ("password" for the
// transfer password). t itself is not changed; what is unchanged may be
// shared with it.
func RedactTask(t *Task) (shown *Task, redacted []string) {
	if t == nil {
		return nil, nil
	}
	hide := func(pvs []ParameterValue) []ParameterValue {
		var out []ParameterValue
		for i, pv := range pvs {
			if !IsSecretParameter(pv.Name) {
				continue
			}
			if out == nil {
				out = slices.Clone(pvs)
			}
			out[i].Value = ""
			if !slices.Contains(redacted, pv.Name) {
				redacted = append(redacted, pv.Name)
			}
		}
		if out == nil {
			return pvs
		}
		return out
	}
	c := *t
	c.ParameterValues = hide(t.ParameterValues)
	if t.Result != nil {
		r := *t.Result
		r.ParameterValues = hide(t.Result.ParameterValues)
		c.Result = &r
	}
	if c.Password != "" {
		c.Password = ""
		redacted = append(redacted, "password")
	}
	return &c, redacted
}
