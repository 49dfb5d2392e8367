// Package cwmp is the TR-069 (CWMP) protocol layer: the SOAP codec for every
// RPC of CWMP 1.0–1.4 in both directions, faults, event and fault code
// constants, version negotiation, a pure session state machine with no I/O,
// HTTP digest authentication helpers and the connection-request clients
// (HTTP GET with digest, TR-111 UDP).
//
// It knows nothing of edges, cores or storage. Decoding matches elements by
// local name (prefixes are arbitrary in the wild) and is bounded in size and
// depth; encoding writes the conventional prefixes (soap-env, soap-enc, cwmp,
// xsd, xsi) and echoes the CWMP namespace URI the CPE used.
package cwmp
