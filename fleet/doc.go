// Package fleet is the vocabulary shared by edges, the core and the sync link:
// device IDs, tasks and their results, device deltas, presets and file
// metadata, with their JSON (GenieACS NBI shapes) and versioned CBOR
// encodings. It may use cwmp value types but knows nothing of storage or
// transport.
package fleet
