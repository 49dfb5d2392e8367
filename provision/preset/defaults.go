package preset

import "github.com/edgeacs/edgeacs/fleet"

// Names of the presets a fresh install starts with (Defaults).
const (
	DefaultBootstrap = "bootstrap"
	DefaultInform    = "inform"
)

// DefaultInformInterval is the longest periodic inform interval, in
// seconds, the default inform preset leaves a device with (GenieACS's
// inform provision sets 300).
const DefaultInformInterval = 300

// CRPasswordPath is the parameter a preset reads for the
// connection-request password the edge keeps for the device: the one it
// set before, or a new random one when it knows none (NULL when the
// edge is told not to make them up). Edge-only, not GenieACS's: it lets
// the default inform preset give every device a password nobody can
// derive from its ID (GenieACS's inform provision seeds it from the ID).
const CRPasswordPath = "DeviceID.ConnectionRequestPassword"

// Defaults are the presets a fresh install gets, once: the core at its
// cluster's founding, a standalone edge at its first start. They are
// ordinary presets afterwards: listed, edited and deleted like any, and
// an operator's change sticks (they are not made again).
//
//   - bootstrap, on 0 BOOTSTRAP: the edge has just cleared the device's
//     cached tree (a device that bootstrapped starts a new life, as
//     GenieACS's bootstrap provision clears it); this refreshes it whole,
//     in either data model.
//   - inform, every session: sets the connection-request credentials
//     the edge uses to wake the device (username the serial number,
//     password CRPasswordPath) when credentials is true, enables the
//     periodic inform and keeps its interval at most
//     DefaultInformInterval (a device informing more often, a load test's
//     say, is left alone). Settled values cost no RPC: on a device that
//     has them, the preset reads the Inform and sends nothing.
func Defaults(credentials bool) []fleet.Preset {
	var inform [][]any
	for _, root := range []string{"InternetGatewayDevice.", "Device."} {
		ms := root + "ManagementServer."
		if credentials {
			inform = append(inform,
				[]any{"value", ms + "ConnectionRequestUsername", []any{"PARAM", "DeviceID.SerialNumber"}},
				[]any{"value", ms + "ConnectionRequestPassword", []any{"PARAM", CRPasswordPath}})
		}
		interval := []any{"PARAM", ms + "PeriodicInformInterval"}
		inform = append(inform,
			[]any{"value", ms + "PeriodicInformEnable", true},
			[]any{"value", ms + "PeriodicInformInterval", []any{"CASE",
				[]any{"AND", []any{">", interval, 0.0}, []any{"<=", interval, float64(DefaultInformInterval)}}, interval,
				true, float64(DefaultInformInterval)}})
	}
	return []fleet.Preset{
		{Name: DefaultBootstrap, Channel: DefaultBootstrap, Events: map[string]bool{"0 BOOTSTRAP": true},
			Provisions: [][]any{{"refresh", "InternetGatewayDevice."}, {"refresh", "Device."}}},
		{Name: DefaultInform, Channel: DefaultInform, Provisions: inform},
	}
}
