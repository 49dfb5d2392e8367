package edge

import (
	"slices"
	"strings"

	"github.com/edgeacs/edgeacs/fleet"
)

// IsSecretParameter reports whether the value of the parameter path is a
// secret the local API must not show. The rule looks only at the last
// path segment, so it is the same for TR-098 and TR-181 and for vendor
// (X_...) extensions:
//
//   - it ends in "Password", "Passphrase" or "Secret" (Password,
//     ConnectionRequestPassword, KeyPassphrase, X_ACME_AdminPassword, ...);
//   - or it ends in "Key" or "PSK" and the path is under a Wi-Fi or
//     security object (a segment "WLANConfiguration", "WiFi" or
//     "Security"): PreSharedKey, WEPKey, KeyPassphrase, X_..._PSK.
//
// The cache keeps the real value: tasks must still send it.
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

// publicParameters hides the values of secret parameters in a parameter
// tree the API is about to show.
func publicParameters(params map[string]Parameter) map[string]Parameter {
	for name, p := range params {
		if !p.Object && IsSecretParameter(name) {
			p.Value, p.Secret = "", true
			params[name] = p
		}
	}
	return params
}

// publicTask is a task as the API shows it: the values of secret
// parameters (in parameterValues and in the result) and the transfer
// password are "" and listed in Redacted ("password" for the transfer
// password). The stored task is not changed.
type publicTask struct {
	*fleet.Task
	Redacted []string `json:"redacted,omitempty"`
	// Warning says why a connection request the client asked for failed.
	Warning string `json:"warning,omitempty"`
}

func newPublicTask(t *fleet.Task) publicTask {
	if t == nil {
		return publicTask{}
	}
	var redacted []string
	hide := func(pvs []fleet.ParameterValue) []fleet.ParameterValue {
		var out []fleet.ParameterValue
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
	return publicTask{Task: &c, Redacted: redacted}
}

func publicTasks(ts []*fleet.Task) []publicTask {
	out := make([]publicTask, len(ts))
	for i, t := range ts {
		out[i] = newPublicTask(t)
	}
	return out
}
