// Package core is the fleet's source of truth: a Raft node (hashicorp/raft on
// raftstore), the FSM on its own Badger DB, membership, the REST API, the sync
// server handler for edges, and the content-addressed file store.
package core
