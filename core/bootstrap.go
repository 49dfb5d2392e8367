package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// Founding a cluster, and knowing whether this node is still in one.
//
// A cluster must be bootstrapped exactly once: a node that bootstraps
// again (say, the founding node restarted with its data directory wiped
// and the same command line) forms a second cluster, acknowledges writes
// the real one never sees, and stays divergent for good. So:
//
//   - A node with raft state never bootstraps.
//   - --bootstrap (one-node start) asks its --join peers first and refuses
//     if any reports an existing cluster.
//   - --bootstrap-expect N with --join (the other founding members) waits
//     until N fresh nodes, all expecting N, see each other and report the
//     same set of founders; then the one with the lowest ID bootstraps
//     the configuration with all N as voters, and the others, seeing it
//     has state, join it. Only one node ever calls BootstrapCluster, and
//     only for a set every founder agreed on. If any peer reports an
//     existing cluster (raft state, or a known leader) the node joins it
//     instead. Peers talk over GET /internal/v1/peer on each other's Raft
//     port (peer.go); --join names those ports.

// peerAskTimeout bounds one question to a peer.
const peerAskTimeout = 3 * time.Second

// Founder is one founding member as a node waiting to bootstrap sees it.
type Founder struct {
	// ID is the member's raft server ID.
	ID string `json:"id"`
	// RaftAddr is the raft address it advertises.
	RaftAddr string `json:"raftAddr"`
}

// PeerInfo is the body of GET /internal/v1/peer: what a node tells
// another that is deciding whether to bootstrap or to join.
type PeerInfo struct {
	// ID, RaftAddr and APIAddr are the answering node's own.
	ID       string `json:"id"`
	RaftAddr string `json:"raftAddr"`
	APIAddr  string `json:"apiAddr"`
	// HasState is true when the node has a raft log or snapshot: it is, or
	// was, a member of a cluster.
	HasState bool `json:"hasState"`
	// Leader is the leader the node knows of, if any.
	Leader string `json:"leader,omitempty"`
	// State is the node's Raft state (leader, follower, candidate,
	// shutdown), which `edgeacs cluster status` shows.
	State string `json:"state,omitempty"`
	// BootstrapExpect is the node's --bootstrap-expect (0 if none).
	BootstrapExpect int `json:"bootstrapExpect,omitempty"`
	// Founders is the set of founding members the node last saw, sorted by
	// ID, while waiting to bootstrap.
	Founders []Founder `json:"founders,omitempty"`
}

// existing reports whether the peer is part of a cluster.
func (p PeerInfo) existing() bool { return p.HasState || p.Leader != "" }

// joinAddrs splits Join into its addresses.
func (c Config) joinAddrs() []string {
	var out []string
	for _, a := range strings.Split(c.Join, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

func (n *Node) peerInfo() PeerInfo {
	_, leader := n.raft.LeaderWithID()
	pi := PeerInfo{ID: n.cfg.ID, RaftAddr: n.RaftAddr(), APIAddr: n.apiAddr, HasState: n.raft.LastIndex() > 0,
		Leader: string(leader), State: strings.ToLower(n.raft.State().String()), BootstrapExpect: n.cfg.BootstrapExpect}
	if f := n.founders.Load(); f != nil {
		pi.Founders = *f
	}
	return pi
}

func (n *Node) clusterPeer(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, n.peerInfo())
}

// peerAnswer is one peer's answer to GET /internal/v1/peer.
type peerAnswer struct {
	addr string
	info PeerInfo
	err  error
}

// askPeers asks every address at once and returns the answers in order.
func (n *Node) askPeers(ctx context.Context, addrs []string) []peerAnswer {
	out := make([]peerAnswer, len(addrs))
	done := make(chan struct{}, len(addrs))
	for i, a := range addrs {
		go func() {
			defer func() { done <- struct{}{} }()
			info, err := n.askPeer(ctx, a)
			out[i] = peerAnswer{addr: a, info: info, err: err}
		}()
	}
	for range addrs {
		<-done
	}
	return out
}

func (n *Node) askPeer(ctx context.Context, addr string) (PeerInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, peerAskTimeout)
	defer cancel()
	var pi PeerInfo
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, peerURL(addr, peerPathInfo), nil)
	if err != nil {
		return pi, fmt.Errorf("%w: peer address %q: %v", ErrBadRequest, addr, err)
	}
	resp, err := n.peerClient.Do(req)
	if err != nil {
		return pi, fmt.Errorf("ask peer %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return pi, fmt.Errorf("ask peer %s: %s", addr, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&pi); err != nil {
		return pi, fmt.Errorf("ask peer %s: decode answer: %w", addr, err)
	}
	if pi.ID == "" {
		return pi, fmt.Errorf("ask peer %s: answer names no node", addr)
	}
	return pi, nil
}

// refuseExistingCluster is --bootstrap's check: an error wrapping
// ErrConflict when a Join peer reports an existing cluster. A peer that
// cannot be asked is logged and does not stop the bootstrap, which is
// what --bootstrap asks for; --bootstrap-expect is the form that waits.
func (n *Node) refuseExistingCluster() error {
	addrs := n.cfg.joinAddrs()
	if len(addrs) == 0 {
		return nil
	}
	for _, a := range n.askPeers(context.Background(), addrs) {
		switch {
		case a.err != nil:
			n.log.Warn("bootstrap: could not ask a peer whether a cluster exists; bootstrapping anyway, as --bootstrap says", "peer", a.addr, "err", a.err)
		case a.info.ID == n.cfg.ID && sameRaftAddr(a.info.RaftAddr, n.RaftAddr()):
			// This node's own address in the list.
		case a.info.existing():
			return fmt.Errorf("%w: refusing to bootstrap a new cluster: peer %s at %s reports an existing one (raft state: %v, leader: %q); start this node without --bootstrap, with --join, to join it",
				ErrConflict, a.info.ID, a.addr, a.info.HasState, a.info.Leader)
		}
	}
	return nil
}

// bootstrapLoop is --bootstrap-expect on a node without raft state: it
// founds the cluster, or finds it exists and joins it (joinLoop).
func (n *Node) bootstrapLoop(ctx context.Context) {
	expect := n.cfg.BootstrapExpect
	addrs := n.cfg.joinAddrs()
	self := Founder{ID: n.cfg.ID, RaftAddr: n.RaftAddr()}
	delay := 100 * time.Millisecond
	lastWhy := ""
	n.log.Info("bootstrap: waiting for the founding members", "expect", expect, "peers", addrs)
	for ctx.Err() == nil {
		if n.raft.LastIndex() > 0 {
			n.log.Info("bootstrap: another founding member bootstrapped the cluster with this node in it")
			break
		}
		answers := n.askPeers(ctx, addrs)
		if a, ok := existingCluster(answers); ok {
			n.log.Info("bootstrap: a cluster exists; joining it instead of bootstrapping", "peer", a.info.ID, "at", a.addr, "leader", a.info.Leader, "raftState", a.info.HasState)
			break
		}
		founders, infos, why, unreachable := gatherFounders(self, expect, answers)
		n.founders.Store(&founders)
		if why == "" {
			why = agreed(self, expect, founders, infos)
		}
		if why != "" && unreachable != "" {
			why += "; " + unreachable
		}
		if why == "" {
			servers := make([]raft.Server, len(founders))
			for i, f := range founders {
				servers[i] = raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(f.ID), Address: raft.ServerAddress(f.RaftAddr)}
			}
			err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
			if err == nil {
				n.log.Info("bootstrap: founded a new cluster", "members", founders)
				return
			}
			if errors.Is(err, raft.ErrCantBootstrap) {
				n.log.Info("bootstrap: this node has raft state now; joining instead")
				break
			}
			why = fmt.Sprintf("bootstrap failed: %v", err)
		}
		if why != lastWhy {
			n.log.Info("bootstrap: not yet", "why", why)
			lastWhy = why
		}
		sleepCtx(ctx, delay)
		delay = min(delay*2, time.Second)
	}
	if ctx.Err() == nil {
		n.joinLoop(ctx)
	}
}

// existingCluster returns the first peer that reports a cluster.
func existingCluster(answers []peerAnswer) (peerAnswer, bool) {
	for _, a := range answers {
		if a.err == nil && a.info.existing() {
			return a, true
		}
	}
	return peerAnswer{}, false
}

// gatherFounders collects the fresh peers that expect the same N, with
// self, sorted by ID; why they must not found a cluster ("" if nothing is
// wrong so far: a peer claiming this node's ID, or expecting another N);
// and which peers did not answer. An unanswered address does not block:
// the founders that answered must still be exactly N and agree.
func gatherFounders(self Founder, expect int, answers []peerAnswer) ([]Founder, map[string]PeerInfo, string, string) {
	founders := []Founder{self}
	infos := map[string]PeerInfo{}
	var why, unreachable []string
	for _, a := range answers {
		switch {
		case a.err != nil:
			unreachable = append(unreachable, a.err.Error())
		case a.info.ID == self.ID && sameRaftAddr(a.info.RaftAddr, self.RaftAddr):
			// This node's own address in the list.
		case a.info.ID == self.ID:
			why = append(why, fmt.Sprintf("peer at %s has this node's ID %s (raft %s): IDs must be unique", a.addr, self.ID, a.info.RaftAddr))
		case a.info.BootstrapExpect != expect:
			why = append(why, fmt.Sprintf("peer %s at %s expects %d founding members, this node %d", a.info.ID, a.addr, a.info.BootstrapExpect, expect))
		default:
			if _, seen := infos[a.info.ID]; !seen {
				infos[a.info.ID] = a.info
				founders = append(founders, Founder{ID: a.info.ID, RaftAddr: a.info.RaftAddr})
			}
		}
	}
	slices.SortFunc(founders, func(a, b Founder) int { return strings.Compare(a.ID, b.ID) })
	return founders, infos, strings.Join(why, "; "), strings.Join(unreachable, "; ")
}

// agreed says why founders cannot bootstrap yet with self as the one to
// do it, or "" when they can: exactly expect of them, self the lowest ID,
// and every other one reporting the very same founders.
func agreed(self Founder, expect int, founders []Founder, infos map[string]PeerInfo) string {
	switch {
	case len(founders) < expect:
		return fmt.Sprintf("%d of %d founding members found", len(founders), expect)
	case len(founders) > expect:
		return fmt.Sprintf("%d fresh nodes expecting %d found (%v): check --bootstrap-expect and --join", len(founders), expect, founders)
	case founders[0].ID != self.ID:
		return fmt.Sprintf("waiting for %s (lowest ID) to bootstrap", founders[0].ID)
	}
	for _, f := range founders[1:] {
		if !slices.Equal(infos[f.ID].Founders, founders) {
			return fmt.Sprintf("%s does not see the same founders yet", f.ID)
		}
	}
	return ""
}

// memberErr says why this node is not in the cluster's raft
// configuration (wrapping ErrNotMember), or nil if it is. A removed or
// replaced node keeps its old state, which goes stale: it must not serve
// it. GetConfiguration reads raft's latest configuration without a
// round trip through raft's main loop, so this is cheap enough per read.
func (n *Node) memberErr() error {
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return fmt.Errorf("read configuration: %w", raftError(err))
	}
	servers := cf.Configuration().Servers
	if len(servers) == 0 {
		return fmt.Errorf("%w: node %s is in no cluster yet (no raft configuration: it has not bootstrapped or joined)", ErrNotMember, n.cfg.ID)
	}
	self := n.RaftAddr()
	for _, s := range servers {
		if string(s.ID) != n.cfg.ID {
			continue
		}
		if sameRaftAddr(string(s.Address), self) {
			return nil
		}
		return fmt.Errorf("%w: the cluster configuration has server ID %s at %s, not at this node's %s: this node was replaced",
			ErrNotMember, s.ID, s.Address, self)
	}
	return fmt.Errorf("%w: server ID %s is not in the cluster configuration (%d members): it was removed", ErrNotMember, n.cfg.ID, len(servers))
}

// sameRaftAddr reports whether two host:port addresses name the same
// endpoint: equal, or resolving to the same IP and port (an operator may
// have written a name where the node advertises an IP).
func sameRaftAddr(a, b string) bool {
	if a == b {
		return true
	}
	ta, err1 := net.ResolveTCPAddr("tcp", a)
	tb, err2 := net.ResolveTCPAddr("tcp", b)
	return err1 == nil && err2 == nil && ta.Port == tb.Port && ta.IP.Equal(tb.IP)
}
