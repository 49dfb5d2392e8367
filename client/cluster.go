package client

import (
	"context"
	"net/http"
)

// ClusterStatus is the core cluster's membership as the answering node
// sees it.
type ClusterStatus struct {
	// Leader is the leader the answering node knows of ("" for none); it
	// may be unreachable: see each server's State.
	Leader  string          `json:"leader"`
	Servers []ClusterServer `json:"servers"`
}

// ClusterServer is one member of the Raft configuration.
type ClusterServer struct {
	ID string `json:"id"`
	// Address is the member's Raft address.
	Address  string `json:"address"`
	APIAddr  string `json:"apiAddr,omitempty"`
	SyncAddr string `json:"syncAddr,omitempty"`
	// Suffrage is voter or nonvoter.
	Suffrage string `json:"suffrage"`
	// State is what the member says it is when asked (leader, follower,
	// candidate), or StateUnreachable.
	State string `json:"state,omitempty"`
	// Problem says why the member is unreachable.
	Problem string `json:"problem,omitempty"`
}

// StateUnreachable is the State of a member that did not answer the
// node that was asked.
const StateUnreachable = "unreachable"

// JoinRequest adds a running node to the cluster as a voter.
type JoinRequest struct {
	ID string `json:"id"`
	// RaftAddr is the node's Raft address, HOST:PORT.
	RaftAddr string `json:"raftAddr"`
	APIAddr  string `json:"apiAddr,omitempty"`
	SyncAddr string `json:"syncAddr,omitempty"`
	// Replace evicts a member with the same ID or Raft address at another
	// address; only for a member that is gone for good.
	Replace bool `json:"replace,omitempty"`
}

// ClusterChange is the answer to a join or a removal.
type ClusterChange struct {
	Status string `json:"status"`
	ID     string `json:"id"`
}

// Cluster reads the cluster's membership, with each member's state as
// it reports it.
func (c *Client) Cluster(ctx context.Context) (ClusterStatus, error) {
	var out ClusterStatus
	err := c.Do(ctx, http.MethodGet, "/api/v1/cluster", nil, &out)
	return out, err
}

// JoinCluster adds a node as a voter.
func (c *Client) JoinCluster(ctx context.Context, req JoinRequest) (ClusterChange, error) {
	var out ClusterChange
	err := c.Do(ctx, http.MethodPost, "/api/v1/cluster/join", req, &out)
	return out, err
}

// RemoveFromCluster removes the node with this ID from the cluster.
func (c *Client) RemoveFromCluster(ctx context.Context, id string) (ClusterChange, error) {
	var out ClusterChange
	err := c.Do(ctx, http.MethodPost, "/api/v1/cluster/remove", map[string]string{"id": id}, &out)
	return out, err
}
