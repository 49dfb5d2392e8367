package fleet

import (
	"slices"
	"strings"
)

// IsSecretParameter reports whether the value of the parameter path is a
// secret the management APIs must not show (the stores keep the real
// value: tasks must still send it). The rule looks only at the last path
// segment, so it is the same for TR-098 and TR-181 and for vendor (X_...)
// extensions:
//
//   - it ends in "Password", "Passphrase" or "Secret" (Password,
//     ConnectionRequestPassword, KeyPassphrase, X_ACME_AdminPassword, ...);
//   - or it ends in "Key" or "PSK" and the path is under a Wi-Fi or
//     security object (a segment "WLANConfiguration", "WiFi" or
//     "Security"): PreSharedKey, WEPKey, KeyPassphrase, X_..._PSK.
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

// SecretMask stands for a secret value in text meant for people: the CLI
// shows every secret parameter's value as it, and a CPE's words that quote
// a secret are kept with the secret replaced by it (HideSecrets).
const SecretMask = "********"

// SecretValues are the values pvs gives secret parameters
// (IsSecretParameter), the empty ones left out.
func SecretValues(pvs []ParameterValue) []string {
	var out []string
	for _, pv := range pvs {
		if pv.Value != "" && IsSecretParameter(pv.Name) {
			out = append(out, pv.Value)
		}
	}
	return out
}

// HideSecrets is text with every occurrence of each non-empty secret
// replaced by SecretMask. A CPE's fault string may quote the value it
// refused (`value "hunter2" is not a valid xsd:hexBinary`); the string is
// stored, synced and shown like any other, so it must be cleaned where it
// enters, before anything keeps it. Longer secrets go first, so one that
// contains another is hidden whole.
func HideSecrets(text string, secrets ...string) string {
	secrets = slices.DeleteFunc(slices.Clone(secrets), func(s string) bool { return s == "" })
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	for _, s := range secrets {
		text = strings.ReplaceAll(text, s, SecretMask)
	}
	return text
}

// RedactedPassword is what TaskView.Redacted lists for a hidden transfer
// password (Download and Upload tasks' password).
const RedactedPassword = "password"

// PublicTask is t as the APIs show it: the values of secret parameters
// (in parameterValues and in the result) and the transfer password are ""
// and listed in Redacted (RedactedPassword for the transfer password). t
// itself is not changed.
func PublicTask(t *Task) TaskView {
	if t == nil {
		return TaskView{}
	}
	var redacted []string
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
		redacted = append(redacted, RedactedPassword)
	}
	return TaskView{Task: &c, Redacted: redacted}
}

// PublicTasks is PublicTask of each; never nil, so a list answers [].
func PublicTasks(ts []*Task) []TaskView {
	out := make([]TaskView, len(ts))
	for i, t := range ts {
		out[i] = PublicTask(t)
	}
	return out
}

// PublicParameters hides the values of secret parameters in a tree the
// API is about to show, in place: Value "" and Secret set. It returns
// params, never nil.
func PublicParameters(params map[string]Parameter) map[string]Parameter {
	if params == nil {
		return map[string]Parameter{}
	}
	for name, p := range params {
		if !p.Object && IsSecretParameter(name) {
			p.Value, p.Secret = "", true
			params[name] = p
		}
	}
	return params
}
