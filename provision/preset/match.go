package preset

import (
	"cmp"
	"slices"
	"time"

	"github.com/edgeacs/edgeacs/provision/expr"
)

// Session is what matching needs to know about one CWMP session.
type Session struct {
	// Events are the event codes of the session's Inform ("0 BOOTSTRAP",
	// "1 BOOT", "2 PERIODIC", "6 CONNECTION REQUEST", "M Reboot", ...).
	Events []string
	// Now is the session's time, for schedules (and NOW() when Env.Now is
	// zero).
	Now time.Time
	// Env resolves the parameters preconditions read.
	Env expr.Env
	// Faulted reports channels with an unresolved fault whose retry is not
	// due: their presets are skipped. Nil skips none.
	Faulted func(channel string) bool
	// Only, if set, restricts matching to one channel: GenieACS retries a
	// faulted channel alone when its retry is due.
	Only string
}

// Candidates returns the presets that pass every test but the
// precondition (channel not faulted, events, schedule), ordered by weight
// then name, as GenieACS orders them. Their preconditions' parameters are
// the ones to fetch before Match (see Prefetch).
func Candidates(presets []*Compiled, s Session) []*Compiled {
	events := make(map[string]bool, len(s.Events))
	for _, ev := range s.Events {
		events[EventKey(ev)] = true
	}
	var out []*Compiled
	for _, p := range presets {
		if s.Only != "" && p.Channel != s.Only {
			continue
		}
		if s.Faulted != nil && s.Faulted(p.Channel) {
			continue
		}
		if !eventsMatch(p.Events, events) {
			continue
		}
		if p.Schedule != nil && !p.Schedule.InWindow(s.Now) {
			continue
		}
		out = append(out, p)
	}
	sortPresets(out)
	return out
}

func eventsMatch(want map[string]bool, have map[string]bool) bool {
	for ev, present := range want {
		if have[ev] != present {
			return false
		}
	}
	return true
}

// sortPresets orders by weight, then name; the sort is stable, so equal
// keys (which names make rare) keep their given order.
func sortPresets(ps []*Compiled) {
	slices.SortStableFunc(ps, func(a, b *Compiled) int {
		if c := cmp.Compare(a.Weight, b.Weight); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
}

// Prefetch lists the parameter paths the candidates' preconditions and
// provision arguments read, each once, in the order the presets are
// tried: the edge fetches those it lacks (or holds stale) from the CPE
// before calling Match, so an argument computed from a parameter (the
// default inform preset's interval) sees its value, not NULL.
func Prefetch(presets []*Compiled, s Session) []string {
	var out []string
	seen := map[string]bool{}
	add := func(paths []string) {
		for _, path := range paths {
			if !seen[path] {
				seen[path] = true
				out = append(out, path)
			}
		}
	}
	for _, p := range Candidates(presets, s) {
		if p.Precondition != nil {
			add(p.Precondition.Paths())
		}
		for _, pr := range p.Provisions {
			for _, a := range pr.Args {
				add(a.Paths())
			}
		}
	}
	return out
}

// Match returns the presets that apply to the session, ordered by weight
// then name: the candidates whose precondition holds (evaluates to true;
// NULL, as from a parameter the device lacks, does not).
func Match(presets []*Compiled, s Session) []*Compiled {
	env := s.Env
	if env.Now.IsZero() {
		env.Now = s.Now
	}
	var out []*Compiled
	for _, p := range Candidates(presets, s) {
		if p.Precondition == nil || p.Precondition.Holds(env) {
			out = append(out, p)
		}
	}
	return out
}

// Group is the matched presets of one channel. A fault in one of them
// stops that channel's provisions for the session and not the others'.
type Group struct {
	Channel string
	Presets []*Compiled
}

// Provisions returns the group's provisions in preset order.
func (g Group) Provisions() []Provision {
	var out []Provision
	for _, p := range g.Presets {
		out = append(out, p.Provisions...)
	}
	return out
}

// Groups splits matched presets by channel, channels in the order their
// first preset comes, presets in the order given (Match's).
func Groups(matched []*Compiled) []Group {
	var out []Group
	index := map[string]int{}
	for _, p := range matched {
		i, ok := index[p.Channel]
		if !ok {
			i = len(out)
			index[p.Channel] = i
			out = append(out, Group{Channel: p.Channel})
		}
		out[i].Presets = append(out[i].Presets, p)
	}
	return out
}
