// Package raftstore implements raft.LogStore and raft.StableStore on Badger v4.
package raftstore
