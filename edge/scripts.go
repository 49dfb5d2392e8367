package edge

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/provision/script"
)

// scriptCache holds the stored provision and virtual parameter scripts
// compiled, so a session
// runs them without reading or parsing anything. Like presetCache, a
// change of the stored scripts bumps a generation and the first session
// that follows reloads them; a script whose source did not change keeps
// its compiled program (compiling costs far more than the reload).
type scriptCache struct {
	gen  atomic.Uint64
	set  atomic.Pointer[scriptSet]
	mu   sync.Mutex // one loader at a time
	errs atomic.Int64
}

// scriptSet is one generation's scripts by name: provision scripts, and
// virtual parameter scripts (names sorted in vnames). Immutable once
// stored.
type scriptSet struct {
	gen    uint64
	byID   map[string]*compiledScript
	vp     map[string]*compiledScript
	vnames []string
}

// compiledScript is a stored script and its compilation's verdict.
type compiledScript struct {
	sum    [sha256.Size]byte
	script *script.Script
	err    error // the script does not compile (the core checked it; an older core may not have)
}

// provisionsChanged marks the compiled scripts stale. Whatever stores or
// deletes pr/ records calls it after the commit.
func (c *Cache) provisionsChanged() { c.scripts.gen.Add(1) }

// provisionScript returns the compiled provision script stored under
// name: found is false when there is none; err says why a stored one
// cannot run (it does not compile).
func (c *Cache) provisionScript(name string) (s *script.Script, found bool, err error) {
	set := c.loadScripts()
	cs, ok := set.byID[name]
	if !ok {
		return nil, false, nil
	}
	return cs.script, true, cs.err
}

// virtualScript returns the compiled virtual parameter script stored
// under name, as provisionScript does.
func (c *Cache) virtualScript(name string) (s *script.Script, found bool, err error) {
	cs, ok := c.loadScripts().vp[name]
	if !ok {
		return nil, false, nil
	}
	return cs.script, true, cs.err
}

// virtualNames are the stored virtual parameters' names, sorted.
func (c *Cache) virtualNames() []string { return c.loadScripts().vnames }

// loadScripts returns the current generation's scripts, loading and
// compiling what changed since the last one.
func (c *Cache) loadScripts() *scriptSet {
	sc := &c.scripts
	gen := sc.gen.Load()
	if s := sc.set.Load(); s != nil && s.gen == gen {
		return s
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	gen = sc.gen.Load()
	prev := sc.set.Load()
	if prev != nil && prev.gen == gen {
		return prev
	}
	stored, err := c.Provisions()
	var vps []fleet.VirtualParameter
	if err == nil {
		vps, err = c.VirtualParameters()
	}
	if err != nil {
		c.log.Error("provision scripts not loaded", "err", err)
		if prev != nil {
			return prev
		}
		return &scriptSet{gen: gen}
	}
	set := &scriptSet{gen: gen, byID: make(map[string]*compiledScript, len(stored)), vp: make(map[string]*compiledScript, len(vps))}
	var old, oldVP map[string]*compiledScript
	if prev != nil {
		old, oldVP = prev.byID, prev.vp
	}
	for _, p := range stored {
		set.byID[p.Name] = c.compileScript(old, p.Name, p.Script, "provision")
	}
	for _, v := range vps {
		set.vp[v.Name] = c.compileScript(oldVP, v.Name, v.Script, "virtual parameter")
		set.vnames = append(set.vnames, v.Name)
	}
	sc.set.Store(set)
	return set
}

// compileScript compiles a script, or reuses the previous program of the
// same name when its source is the same.
func (c *Cache) compileScript(prev map[string]*compiledScript, name, src, what string) *compiledScript {
	sum := sha256.Sum256([]byte(src))
	if old, ok := prev[name]; ok && old.sum == sum {
		return old
	}
	s, err := script.Compile(name, src)
	if err != nil {
		c.scripts.errs.Add(1)
		c.log.Warn(what+" script does not compile: what runs it faults", "name", name, "err", err)
	}
	return &compiledScript{sum: sum, script: s, err: err}
}
