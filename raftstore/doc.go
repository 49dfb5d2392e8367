// Package raftstore implements raft.LogStore and raft.StableStore on Badger v4.
//
// It plays the role hashicorp/raft-boltdb plays for Consul and Nomad: the
// core cluster keeps its raft log and its term/vote in one Store.
//
//	s, err := raftstore.Open(dir, raftstore.DefaultOptions())
//	r, err := raft.NewRaft(conf, fsm, s, s, snaps, transport)
//
// # Layout
//
// Keys are a one-byte bucket prefix followed by the raft index as a
// big-endian uint64 (logs) or the raw StableStore key, so a prefix iterator
// walks the log in index order and the buckets never mix. Values use a small
// versioned binary encoding of raft.Log (see codec.go; measured against
// CBOR in BenchmarkCodec: ~30x faster to encode, ~1.6x to decode, 10%
// smaller).
//
// # Compression
//
// An entry's Data of 4 KiB or more is stored S2-compressed when that saves
// at least an eighth (a flag in the value says so). The core's batch
// entries repeat the same parameter names hundreds of times and shrink
// about eightfold, and Badger copies an inline value into its write-ahead
// log, its memtable, a level-0 table and every level compaction moves it
// through: compressed, storing and reading back a 320 KiB batch costs a
// third of the CPU (BenchmarkStoreLogsBatchEntry). Only the local copy is
// compressed; raft replicates entries as they are.
//
// # Cheap bounds
//
// FirstIndex and LastIndex are answered from memory. The bounds are read
// from disk once at Open and republished after every commit while writers
// hold a mutex, so a reader that sees LastIndex = n can always read entry n.
//
// # Durability and crashes
//
// With Options.SyncWrites (DefaultOptions) every StoreLogs, DeleteRange and
// Set is fsynced before it returns, so an acknowledged entry survives power
// loss. Without it entries survive a process crash but not a power loss.
//
// StoreLogs is one transaction. Only a batch too large for one Badger
// transaction is split, committed in index order, each part synced before
// the next, so a crash leaves a prefix of the batch: the log never has a
// gap. DeleteRange likewise deletes oversized ranges in chunks from the
// end that keeps the remainder contiguous (top-down for a tail truncation,
// bottom-up for head compaction).
//
// # Traps this package avoids
//
// raft.NewRaft treats a StableStore miss as a fresh node only when the error
// text is exactly "not found": Get and GetUint64 return ErrKeyNotFound
// unwrapped. GetLog returns raft.ErrLogNotFound, also unwrapped, because raft
// compares it with ==.
package raftstore
