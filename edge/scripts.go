package edge

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/provision/script"
)

// scriptCache holds the stored provision scripts compiled, so a session
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

// scriptSet is one generation's scripts by name. Immutable once stored.
type scriptSet struct {
	gen  uint64
	byID map[string]*compiledScript
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
	if err != nil {
		c.log.Error("provision scripts not loaded", "err", err)
		if prev != nil {
			return prev
		}
		return &scriptSet{gen: gen}
	}
	set := &scriptSet{gen: gen, byID: make(map[string]*compiledScript, len(stored))}
	for _, p := range stored {
		set.byID[p.Name] = c.compileScript(prev, p)
	}
	sc.set.Store(set)
	return set
}

// compileScript compiles p, or reuses prev's program when its source is
// the same.
func (c *Cache) compileScript(prev *scriptSet, p fleet.Provision) *compiledScript {
	sum := sha256.Sum256([]byte(p.Script))
	if prev != nil {
		if old, ok := prev.byID[p.Name]; ok && old.sum == sum {
			return old
		}
	}
	s, err := script.Compile(p.Name, p.Script)
	if err != nil {
		c.scripts.errs.Add(1)
		c.log.Warn("provision script does not compile: the presets naming it fault", "provision", p.Name, "err", err)
	}
	return &compiledScript{sum: sum, script: s, err: err}
}
