package core

import (
	"fmt"
	"net/http"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/httpapi"
	"github.com/edgeacs/edgeacs/provision/script"
)

// Virtual parameter scripts (GenieACS's virtualParameters): stored
// fleet-wide like provision scripts (vp/<name>, the shared downlink),
// run by the edges when a preset, a script or a task reads or sets
// VirtualParameters.<name>. /api/v1/virtual-parameters/{name} and the
// GenieACS NBI's /virtual_parameters/{name} take the source as the body.

// ValidateVirtualParameter checks a virtual parameter script as PUT
// receives it: a name a path and a precondition can spell, the size
// bound, and a script that compiles (a syntax error is a
// *script.CompileError with its line and column, as for provisions).
func ValidateVirtualParameter(v *fleet.VirtualParameter) error {
	if err := v.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if _, err := script.Compile(v.Name, v.Script); err != nil {
		return fmt.Errorf("%w: virtual parameter %s: %w", ErrBadRequest, v.Name, err)
	}
	return nil
}

func (n *Node) listVirtualParameters(w http.ResponseWriter, r *http.Request) {
	vs, err := n.fsm.VirtualParameters()
	if err != nil {
		writeError(w, err)
		return
	}
	if vs == nil {
		vs = []*fleet.VirtualParameter{}
	}
	writeJSON(w, 200, vs)
}

func (n *Node) getVirtualParameter(w http.ResponseWriter, r *http.Request) {
	v, err := n.fsm.VirtualParameter(r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, v)
}

// putVirtualParameter stores the request body, whatever its content
// type, as the script, as GenieACS's PUT /virtual_parameters/{name} does.
func (n *Node) putVirtualParameter(w http.ResponseWriter, r *http.Request) {
	body, err := n.readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	v := fleet.VirtualParameter{Name: r.PathValue("name"), Script: string(body)}
	if err := ValidateVirtualParameter(&v); err != nil {
		writeJSON(w, httpapi.Status(err), provisionErrorBody(err))
		return
	}
	if _, ok := n.applyOK(w, r, Command{Op: OpPutVirtualParameter, VirtualParameter: &v}); ok {
		writeJSON(w, 200, v)
	}
}

func (n *Node) deleteVirtualParameter(w http.ResponseWriter, r *http.Request) {
	if _, ok := n.applyOK(w, r, Command{Op: OpDeleteVirtualParameter, Name: r.PathValue("name")}); ok {
		w.WriteHeader(http.StatusNoContent)
	}
}
