// Package preset is GenieACS's preset model, checked and matched: which
// provisions a CWMP session gets.
//
// A preset (fleet.Preset, stored by the core in GenieACS's JSON shape) says
// when it applies: events the session must or must not carry, a schedule
// window, and a precondition over device parameters (an expression, see
// package expr). Compile validates one at PUT time and prepares it for the
// edges; an edge matches its compiled presets per session:
//
//	paths := preset.Prefetch(all, s)  // fetch these from the CPE if missing
//	matched := preset.Match(all, s)   // weight order
//	for _, g := range preset.Groups(matched) {
//		run(g.Channel, g.Provisions()) // a fault stops one channel only
//	}
//
// The package is pure: no storage, no network, no clock of its own.
package preset
