package edge

import (
	"github.com/edgeacs/edgeacs/fleet"
)

// IsSecretParameter is fleet.IsSecretParameter, the rule both APIs share;
// the cache keeps the real value, since tasks must still send it.
func IsSecretParameter(path string) bool { return fleet.IsSecretParameter(path) }

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
	shown, redacted := fleet.RedactTask(t)
	return publicTask{Task: shown, Redacted: redacted}
}

func publicTasks(ts []*fleet.Task) []publicTask {
	out := make([]publicTask, len(ts))
	for i, t := range ts {
		out[i] = newPublicTask(t)
	}
	return out
}
