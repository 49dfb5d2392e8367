// Package e2e builds the real edgeacs binary and drives whole systems with it:
// several processes, the simulator, chaos and the CLI.
package e2e
