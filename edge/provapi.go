package edge

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/httpapi"
	"github.com/edgeacs/edgeacs/provision"
	"github.com/edgeacs/edgeacs/provision/preset"
	"github.com/edgeacs/edgeacs/provision/script"
)

// ErrProvisioningAtCore means this edge takes its presets and provision
// scripts from the core: they are stored there (the API answers 409).
var ErrProvisioningAtCore = httpapi.Mark(errors.New("edge: presets and provision scripts are managed at the core"), httpapi.ErrConflict)

// maxPresetBody bounds a preset PUT's JSON body.
const maxPresetBody = 1 << 20

// PutPreset stores a preset of this edge's own (a standalone edge's; one
// synced to a core takes them from the downlink). The caller has
// validated it (preset.Validate).
func (c *Cache) PutPreset(p *fleet.Preset) error {
	if !fleet.ValidProvisionName(p.Name) {
		return fmt.Errorf("store preset %q: %w: bad name", p.Name, errBadRequest)
	}
	if err := c.update(func(txn *badger.Txn) error { return setLocalRecord(txn, pPreset+p.Name, p) }); err != nil {
		return fmt.Errorf("store preset %s: %w", p.Name, err)
	}
	c.presetsChanged()
	return nil
}

// DeletePreset deletes a stored preset; ErrNotFound if there is none.
func (c *Cache) DeletePreset(name string) error {
	if err := c.deleteRecord(pPreset, name); err != nil {
		return fmt.Errorf("delete preset %s: %w", name, err)
	}
	c.presetsChanged()
	return nil
}

// Preset returns a stored preset, or ErrNotFound.
func (c *Cache) Preset(name string) (fleet.Preset, error) {
	var p fleet.Preset
	if !fleet.ValidProvisionName(name) {
		return p, fmt.Errorf("preset %q: %w", name, ErrNotFound)
	}
	if err := c.db.View(func(txn *badger.Txn) error { return getRecord(txn, pPreset+name, &p) }); err != nil {
		return fleet.Preset{}, fmt.Errorf("preset %s: %w", name, err)
	}
	return p, nil
}

// PutProvision stores a provision script of this edge's own (see
// PutPreset). The caller has checked it (validateProvision).
func (c *Cache) PutProvision(p *fleet.Provision) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("store provision: %w: %w", errBadRequest, err)
	}
	if err := c.update(func(txn *badger.Txn) error { return setLocalRecord(txn, pProv+p.Name, p) }); err != nil {
		return fmt.Errorf("store provision %s: %w", p.Name, err)
	}
	c.provisionsChanged()
	return nil
}

// DeleteProvision deletes a stored provision script; ErrNotFound if
// there is none.
func (c *Cache) DeleteProvision(name string) error {
	if err := c.deleteRecord(pProv, name); err != nil {
		return fmt.Errorf("delete provision %s: %w", name, err)
	}
	c.provisionsChanged()
	return nil
}

// SeedDefaultPresets stores presets once in the edge's life (a
// standalone edge's defaults, preset.Defaults): the first call stores
// those not already present and marks it done; every later call, after
// an operator edited or deleted them, does nothing. made reports whether
// this call stored them.
func (c *Cache) SeedDefaultPresets(presets []fleet.Preset) (made bool, err error) {
	err = c.update(func(txn *badger.Txn) error {
		made = false
		if _, err := txn.Get([]byte(kDefaults)); err == nil {
			return nil
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		for i := range presets {
			p := &presets[i]
			if _, err := txn.Get([]byte(pPreset + p.Name)); err == nil {
				continue // the operator's own, stored before
			} else if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
			if err := setLocalRecord(txn, pPreset+p.Name, p); err != nil {
				return err
			}
		}
		made = true
		return txn.Set([]byte(kDefaults), nil)
	})
	if err != nil {
		return false, fmt.Errorf("default presets: %w", err)
	}
	if made {
		c.presetsChanged()
	}
	return made, nil
}

// VirtualParameter returns a stored virtual parameter script, or
// ErrNotFound.
func (c *Cache) VirtualParameter(name string) (fleet.VirtualParameter, error) {
	var v fleet.VirtualParameter
	if !fleet.ValidVirtualParameterName(name) {
		return v, fmt.Errorf("virtual parameter %q: %w", name, ErrNotFound)
	}
	if err := c.db.View(func(txn *badger.Txn) error { return getRecord(txn, pVParam+name, &v) }); err != nil {
		return fleet.VirtualParameter{}, fmt.Errorf("virtual parameter %s: %w", name, err)
	}
	return v, nil
}

// VirtualParameters returns the stored virtual parameter scripts, in name
// order.
func (c *Cache) VirtualParameters() ([]fleet.VirtualParameter, error) {
	return viewRecords[fleet.VirtualParameter](c, pVParam, "virtual parameters")
}

// PutVirtualParameter stores a virtual parameter script of this edge's
// own (see PutPreset). The caller has checked it (validateVirtualParameter).
func (c *Cache) PutVirtualParameter(v *fleet.VirtualParameter) error {
	if err := v.Validate(); err != nil {
		return fmt.Errorf("store virtual parameter: %w: %w", errBadRequest, err)
	}
	if err := c.update(func(txn *badger.Txn) error { return setLocalRecord(txn, pVParam+v.Name, v) }); err != nil {
		return fmt.Errorf("store virtual parameter %s: %w", v.Name, err)
	}
	c.provisionsChanged()
	return nil
}

// DeleteVirtualParameter deletes a stored virtual parameter script;
// ErrNotFound if there is none.
func (c *Cache) DeleteVirtualParameter(name string) error {
	if !fleet.ValidVirtualParameterName(name) {
		return fmt.Errorf("delete virtual parameter %q: %w", name, ErrNotFound)
	}
	if err := c.deleteRecord(pVParam, name); err != nil {
		return fmt.Errorf("delete virtual parameter %s: %w", name, err)
	}
	c.provisionsChanged()
	return nil
}

// deleteRecord deletes prefix+name, or answers ErrNotFound.
func (c *Cache) deleteRecord(prefix, name string) error {
	if !fleet.ValidProvisionName(name) {
		return ErrNotFound
	}
	key := []byte(prefix + name)
	return c.update(func(txn *badger.Txn) error {
		if _, err := txn.Get(key); errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		if err := txn.Delete([]byte(pLocal + string(key))); err != nil {
			return err
		}
		return txn.Delete(key)
	})
}

// validateProvision is the core's check of a provision script PUT
// (core.ValidateProvision), for a standalone edge's API: name and size
// bounds, not a built-in's name, and a script that compiles (a syntax
// error is a *script.CompileError with its line and column).
func validateProvision(p *fleet.Provision) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	if err := provision.CheckScriptName(p.Name); err != nil {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	if _, err := script.Compile(p.Name, p.Script); err != nil {
		return fmt.Errorf("%w: provision %s: %w", errBadRequest, p.Name, err)
	}
	return nil
}

// validateVirtualParameter is the core's check of a virtual parameter
// PUT (core.ValidateVirtualParameter), for a standalone edge's API.
func validateVirtualParameter(v *fleet.VirtualParameter) error {
	if err := v.Validate(); err != nil {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	if _, err := script.Compile(v.Name, v.Script); err != nil {
		return fmt.Errorf("%w: virtual parameter %s: %w", errBadRequest, v.Name, err)
	}
	return nil
}

// refusedBody is the answer to a PUT refused for its content: the
// message and where the mistake is (a preset's field and a
// precondition's line and column; a script's line and column), as the
// core answers.
func refusedBody(err error) map[string]any {
	body := preset.ErrorFields(err)
	var ce *script.CompileError
	if errors.As(err, &ce) {
		body["line"], body["column"] = ce.Line, ce.Column
	}
	body["error"] = err.Error()
	return body
}

func (a *api) listPresets(w http.ResponseWriter, r *http.Request) {
	ps, err := a.cfg.Cache.Presets()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if ps == nil {
		ps = []fleet.Preset{}
	}
	httpapi.WriteList(w, ps, "", -1)
}

func (a *api) getPreset(w http.ResponseWriter, r *http.Request) {
	p, err := a.cfg.Cache.Preset(r.PathValue("name"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// putPreset answers PUT /api/v1/presets/{name} on a standalone edge as
// the core does: the body is a preset in GenieACS's shape, validated
// (400 with the field, and a precondition's line and column), stored,
// and answered with 200 and the preset.
func (a *api) putPreset(w http.ResponseWriter, r *http.Request) {
	if !a.cfg.LocalProvisioning {
		a.fail(w, r, fmt.Errorf("%w: store the preset there (PUT /api/v1/presets/{name} on a core node); it reaches this edge over the sync link", ErrProvisioningAtCore))
		return
	}
	body, err := httpapi.ReadBody(w, r, maxPresetBody)
	if err != nil {
		a.fail(w, r, fmt.Errorf("preset: %w", err))
		return
	}
	var p fleet.Preset
	if err := httpapi.DecodeStrict(body, &p); err != nil {
		a.fail(w, r, err)
		return
	}
	name := r.PathValue("name")
	if p.Name != "" && p.Name != name {
		a.fail(w, r, fmt.Errorf("%w: body _id %q differs from the URL's %q", errBadRequest, p.Name, name))
		return
	}
	p.Name = name
	if !fleet.ValidProvisionName(name) {
		a.fail(w, r, fmt.Errorf("%w: bad preset name %q (1–256 bytes of UTF-8; no '/', control characters, '.' or '..')", errBadRequest, name))
		return
	}
	if p.Provisions == nil {
		a.fail(w, r, fmt.Errorf("%w: preset %s: provisions must be an array of arrays", errBadRequest, name))
		return
	}
	if err := preset.Validate(&p); err != nil {
		writeJSON(w, http.StatusBadRequest, refusedBody(err))
		return
	}
	if err := a.cfg.Cache.PutPreset(&p); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (a *api) deletePreset(w http.ResponseWriter, r *http.Request) {
	if !a.cfg.LocalProvisioning {
		a.fail(w, r, fmt.Errorf("%w: delete the preset there (DELETE /api/v1/presets/{name} on a core node)", ErrProvisioningAtCore))
		return
	}
	if err := a.cfg.Cache.DeletePreset(r.PathValue("name")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// putProvision answers PUT /api/v1/provisions/{name} on a standalone
// edge as the core does: the body, whatever its content type, is the
// script; it must compile and may not take a built-in's name.
func (a *api) putProvision(w http.ResponseWriter, r *http.Request) {
	if !a.cfg.LocalProvisioning {
		a.fail(w, r, fmt.Errorf("%w: store the script there (PUT /api/v1/provisions/{name} on a core node); it reaches this edge over the sync link", ErrProvisioningAtCore))
		return
	}
	body, err := httpapi.ReadBody(w, r, fleet.MaxProvisionScript)
	if err != nil {
		a.fail(w, r, fmt.Errorf("provision: %w", err))
		return
	}
	p := fleet.Provision{Name: r.PathValue("name"), Script: string(body)}
	if err := validateProvision(&p); err != nil {
		writeJSON(w, http.StatusBadRequest, refusedBody(err))
		return
	}
	if err := a.cfg.Cache.PutProvision(&p); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (a *api) deleteProvision(w http.ResponseWriter, r *http.Request) {
	if !a.cfg.LocalProvisioning {
		a.fail(w, r, fmt.Errorf("%w: delete the script there (DELETE /api/v1/provisions/{name} on a core node)", ErrProvisioningAtCore))
		return
	}
	if err := a.cfg.Cache.DeleteProvision(r.PathValue("name")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) listVirtualParameters(w http.ResponseWriter, r *http.Request) {
	vs, err := a.cfg.Cache.VirtualParameters()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if vs == nil {
		vs = []fleet.VirtualParameter{}
	}
	httpapi.WriteList(w, vs, "", -1)
}

func (a *api) getVirtualParameter(w http.ResponseWriter, r *http.Request) {
	v, err := a.cfg.Cache.VirtualParameter(r.PathValue("name"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// putVirtualParameter answers PUT /api/v1/virtual-parameters/{name} on a
// standalone edge as the core does: the body is the script; it must
// compile.
func (a *api) putVirtualParameter(w http.ResponseWriter, r *http.Request) {
	if !a.cfg.LocalProvisioning {
		a.fail(w, r, fmt.Errorf("%w: store the script there (PUT /api/v1/virtual-parameters/{name} on a core node); it reaches this edge over the sync link", ErrProvisioningAtCore))
		return
	}
	body, err := httpapi.ReadBody(w, r, fleet.MaxProvisionScript)
	if err != nil {
		a.fail(w, r, fmt.Errorf("virtual parameter: %w", err))
		return
	}
	v := fleet.VirtualParameter{Name: r.PathValue("name"), Script: string(body)}
	if err := validateVirtualParameter(&v); err != nil {
		writeJSON(w, http.StatusBadRequest, refusedBody(err))
		return
	}
	if err := a.cfg.Cache.PutVirtualParameter(&v); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (a *api) deleteVirtualParameter(w http.ResponseWriter, r *http.Request) {
	if !a.cfg.LocalProvisioning {
		a.fail(w, r, fmt.Errorf("%w: delete the script there (DELETE /api/v1/virtual-parameters/{name} on a core node)", ErrProvisioningAtCore))
		return
	}
	if err := a.cfg.Cache.DeleteVirtualParameter(r.PathValue("name")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
