package core

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/edgeacs/edgeacs/fleet"
)

type regInput struct {
	write bool
	value int
}

// registerModel is a single integer register: the weight of one preset.
var registerModel = porcupine.Model{
	Init: func() any { return 0 },
	Step: func(state, input, output any) (bool, any) {
		in := input.(regInput)
		if in.write {
			return true, in.value
		}
		return output.(int) == state.(int), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(regInput)
		if in.write {
			return fmt.Sprintf("put %d", in.value)
		}
		return fmt.Sprintf("get -> %v", output)
	},
}

// TestLinearizableAcrossLeaderKill records a history of writes and
// ?consistent=true reads of one preset through every node while the leader
// is killed, and checks it with porcupine. A write whose answer is lost is
// left open (it may or may not have happened).
func TestLinearizableAcrossLeaderKill(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := leaderOf(t, nodes)
	var (
		mu      sync.Mutex
		history []porcupine.Operation
		next    int
	)
	record := func(op porcupine.Operation) {
		mu.Lock()
		history = append(history, op)
		mu.Unlock()
	}
	client := &http.Client{Timeout: 5 * time.Second}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := nodes[rng.IntN(len(nodes))]
				if rng.IntN(2) == 0 {
					mu.Lock()
					next++
					v := next
					mu.Unlock()
					body := fmt.Sprintf(`{"weight": %d, "provisions": []}`, v)
					req, _ := http.NewRequest("PUT", api(n, "/presets/reg"), strings.NewReader(body))
					call := time.Now().UnixNano()
					resp, err := client.Do(req)
					ret := time.Now().UnixNano()
					if err == nil {
						resp.Body.Close()
					}
					if err != nil || resp.StatusCode != 200 {
						ret = math.MaxInt64 // outcome unknown
					}
					record(porcupine.Operation{ClientId: c, Input: regInput{write: true, value: v}, Call: call, Output: 0, Return: ret})
					continue
				}
				call := time.Now().UnixNano()
				resp, err := client.Get(api(n, "/presets/reg?consistent=true"))
				if err != nil {
					continue
				}
				var p fleet.Preset
				code := resp.StatusCode
				derr := decodeJSONBody(resp, &p)
				resp.Body.Close()
				ret := time.Now().UnixNano()
				switch {
				case code == 200 && derr == nil:
					record(porcupine.Operation{ClientId: c, Input: regInput{}, Call: call, Output: p.Weight, Return: ret})
				case code == 404:
					record(porcupine.Operation{ClientId: c, Input: regInput{}, Call: call, Output: 0, Return: ret})
				}
			}
		}()
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(history) }
	waitFor(t, "operations before the kill", 10*time.Second, func() bool { return count() >= 100 })
	leader.stop()
	before := count()
	var rest []*testNode
	for _, n := range nodes {
		if n != leader {
			rest = append(rest, n)
		}
	}
	leaderOf(t, rest)
	waitFor(t, "operations after the kill", 15*time.Second, func() bool { return count() >= before+100 })
	close(stop)
	wg.Wait()
	res := porcupine.CheckOperationsTimeout(registerModel, history, 30*time.Second)
	if res == porcupine.Illegal {
		t.Fatalf("history of %d operations is not linearizable", len(history))
	}
	t.Logf("%d operations, linearizability check: %v", len(history), res)
}
