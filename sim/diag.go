package sim

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
)

// Diagnostics. A SetParameterValues that sets a diagnostic object's
// DiagnosticsState to "Requested" (IPPing, TraceRoute, the TR-143
// DownloadDiagnostics/UploadDiagnostics, NSLookup) makes the device run
// the test after the session ends, write its results into the tree and
// inform "8 DIAGNOSTICS COMPLETE" in a new session, unless
// Config.NoDiagnosticsComplete or Device.SetNoDiagnosticsComplete holds
// that Inform back (an ACS's timeout). Results are deterministic in
// (Seed, device index, target). Targets that fail, by rule:
//
//   - a host (or URL host) ending in ".invalid" (RFC 2606) cannot be
//     resolved: IPPing and TraceRoute end in Error_CannotResolveHostName,
//     NSLookup answers Error_HostNameNotResolved, the TR-143 tests end in
//     Error_InitConnectionFailed;
//   - a host starting with "unreachable" or an address in 192.0.2.0/24
//     (TEST-NET-1) never answers: every ping fails (Complete, SuccessCount
//     0), the trace ends in Error_MaxHopCountExceeded, the TR-143 tests in
//     Error_NoResponse.

// diagKind is which test a diagnostic object runs.
type diagKind int

const (
	diagPing diagKind = iota + 1
	diagTrace
	diagDownload
	diagUpload
	diagNSLookup
)

// diagObjects maps each diagnostic object of the templates to its kind.
var diagObjects = map[string]diagKind{
	"InternetGatewayDevice.IPPingDiagnostics.":     diagPing,
	"InternetGatewayDevice.TraceRouteDiagnostics.": diagTrace,
	"InternetGatewayDevice.DownloadDiagnostics.":   diagDownload,
	"InternetGatewayDevice.UploadDiagnostics.":     diagUpload,
	"Device.IP.Diagnostics.IPPing.":                diagPing,
	"Device.IP.Diagnostics.TraceRoute.":            diagTrace,
	"Device.IP.Diagnostics.DownloadDiagnostics.":   diagDownload,
	"Device.IP.Diagnostics.UploadDiagnostics.":     diagUpload,
	"Device.DNS.Diagnostics.NSLookupDiagnostics.":  diagNSLookup,
}

// requestedDiagnostic returns the diagnostic object an accepted
// SetParameterValues asked to run, "" for none.
func requestedDiagnostic(params []cwmp.ParameterValue) string {
	for _, p := range params {
		obj, ok := strings.CutSuffix(p.Name, "DiagnosticsState")
		if ok && p.Value == "Requested" && diagObjects[obj] != 0 {
			return obj
		}
	}
	return ""
}

// SetNoDiagnosticsComplete makes the device run the diagnostics it is
// asked for but never inform 8 DIAGNOSTICS COMPLETE (on), or inform it
// again (off).
func (d *Device) SetNoDiagnosticsComplete(on bool) {
	d.mu.Lock()
	d.noDiagComplete = on
	d.mu.Unlock()
}

// runDiagnostic runs the test on obj (after the session that asked for
// it), writes its results and queues 8 DIAGNOSTICS COMPLETE.
func (d *Device) runDiagnostic(ctx context.Context, obj string) {
	d.mu.Lock()
	get := func(n string) string { v, _ := d.tree.Get(obj + n); return v }
	kind := diagObjects[obj]
	target := get("Host")
	switch kind {
	case diagDownload:
		target = get("DownloadURL")
	case diagUpload:
		target = get("UploadURL")
	case diagNSLookup:
		target = get("HostName")
	}
	count, _ := strconv.Atoi(get("NumberOfRepetitions"))
	if kind == diagTrace {
		count, _ = strconv.Atoi(get("NumberOfTries"))
	}
	maxHops, _ := strconv.Atoi(get("MaxHopCount"))
	fileLen, _ := strconv.ParseUint(get("TestFileLength"), 10, 64)
	d.mu.Unlock()

	h := fnv.New64a()
	h.Write([]byte(target))
	rng := rand.New(rand.NewPCG(uint64(d.f.cfg.Seed)^h.Sum64(), uint64(d.index)))
	res := diagResults(kind, target, max(count, 1), max(maxHops, 1), fileLen, rng, time.Now())
	// The test takes a moment, as on a real line.
	if !sleepCtx(ctx, d.f.scaled(20*time.Millisecond)) {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if cur, _ := d.tree.Get(obj + "DiagnosticsState"); cur != "Requested" {
		return // the ACS changed its mind (set another value) meanwhile
	}
	d.tree.resetResults(obj)
	hopPrefix := "Hop"
	if strings.HasPrefix(obj, "Device.") {
		hopPrefix = ""
	}
	if kind == diagTrace {
		d.tree.setTable(obj+"RouteHops.", len(res.hops))
		for i, hp := range res.hops {
			p := obj + "RouteHops." + strconv.Itoa(i+1) + "." + hopPrefix
			d.tree.setResult(p+"Host", hp[0])
			d.tree.setResult(p+"HostAddress", hp[1])
			d.tree.setResult(p+"ErrorCode", hp[2])
			d.tree.setResult(p+"RTTimes", hp[3])
		}
	}
	if kind == diagNSLookup {
		d.tree.setTable(obj+"Result.", len(res.answers))
		for i, a := range res.answers {
			p := obj + "Result." + strconv.Itoa(i+1) + "."
			for k, n := range []string{"Status", "AnswerType", "HostNameReturned", "IPAddresses", "DNSServerIP", "ResponseTime"} {
				d.tree.setResult(p+n, a[k])
			}
		}
	}
	for n, v := range res.values {
		d.tree.setResult(obj+n, v)
	}
	d.tree.setResult(obj+"DiagnosticsState", res.state)
	if !d.noDiagComplete && !d.f.cfg.NoDiagnosticsComplete {
		d.addEvent(cwmp.EventDiagnosticsComplete, "")
	}
}

// diagOutcome is a test's results: the final state, the values to write
// under the object, and the rows of its table (traceroute hops:
// host, address, error code, RTTs; nslookup answers).
type diagOutcome struct {
	state   string
	values  map[string]string
	hops    [][4]string
	answers [][6]string
}

// diagTarget classifies a host: resolvable, and answering.
func diagTarget(host string) (resolves, answers bool) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "" || strings.HasSuffix(host, ".invalid") || host == "invalid" {
		return false, false
	}
	if strings.HasPrefix(host, "unreachable") {
		return true, false
	}
	if a, err := netip.ParseAddr(host); err == nil && netip.MustParsePrefix("192.0.2.0/24").Contains(a) {
		return true, false
	}
	return true, true
}

// fakeAddr is the address a simulated resolver gives host.
func fakeAddr(host string) string {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.String()
	}
	h := fnv.New32a()
	h.Write([]byte(host))
	v := h.Sum32()
	return fmt.Sprintf("203.0.113.%d", 1+v%250)
}

// sizeInURL finds a size such as "10MB" or "512k" in a download URL.
var sizeInURL = regexp.MustCompile(`(?i)(\d{1,6})([KM])i?B?\b`)

func diagResults(kind diagKind, target string, count, maxHops int, fileLen uint64, rng *rand.Rand, now time.Time) diagOutcome {
	out := diagOutcome{values: map[string]string{}}
	host := target
	if kind == diagDownload || kind == diagUpload {
		if u, err := url.Parse(target); err == nil {
			host = u.Hostname()
		}
	}
	resolves, answers := diagTarget(host)
	base := 5 + rng.IntN(40) // the path's typical RTT, ms
	u := func(n int) string { return strconv.Itoa(n) }
	switch kind {
	case diagPing:
		if !resolves {
			out.state = "Error_CannotResolveHostName"
			return out
		}
		out.state = "Complete"
		ok, sum, lo, hi := 0, 0, 0, 0
		for range count {
			if !answers || rng.IntN(50) == 0 { // ~2 % loss on a good path
				continue
			}
			rtt := base + rng.IntN(base/2+3)
			ok++
			sum += rtt
			if lo == 0 || rtt < lo {
				lo = rtt
			}
			hi = max(hi, rtt)
		}
		avg := 0
		if ok > 0 {
			avg = sum / ok
		}
		out.values["SuccessCount"], out.values["FailureCount"] = u(ok), u(count-ok)
		out.values["MinimumResponseTime"], out.values["AverageResponseTime"] = u(lo), u(avg)
		out.values["MaximumResponseTime"] = u(hi)
	case diagTrace:
		if !resolves {
			out.state = "Error_CannotResolveHostName"
			return out
		}
		hops := 3 + rng.IntN(6)
		if !answers {
			hops = maxHops
		}
		hops = min(hops, maxHops)
		rtt := 1
		for i := range hops {
			rtt += 1 + rng.IntN(base/3+2)
			var times []string
			for range count {
				times = append(times, u(rtt+rng.IntN(3)))
			}
			name, addr := fmt.Sprintf("hop%d.isp.example", i+1), fmt.Sprintf("100.64.%d.1", i+1)
			if i == hops-1 && answers {
				name, addr = host, fakeAddr(host)
			}
			if !answers && i >= 3 {
				// Past the ISP's edge nothing answers: "* * *".
				name, addr, times = "", "", nil
			}
			out.hops = append(out.hops, [4]string{name, addr, "0", strings.Join(times, ",")})
		}
		if !answers {
			out.state = "Error_MaxHopCountExceeded"
			return out
		}
		out.state = "Complete"
		out.values["ResponseTime"] = u(rtt)
	case diagDownload, diagUpload:
		if !resolves {
			out.state = "Error_InitConnectionFailed"
			return out
		}
		if !answers {
			out.state = "Error_NoResponse"
			return out
		}
		out.state = "Completed"
		bytes := fileLen
		if kind == diagDownload {
			// What the server sent: the size the URL names ("10MB.bin"),
			// else 1–16 MiB.
			bytes = uint64(1+rng.IntN(16)) << 20
			if m := sizeInURL.FindStringSubmatch(target); m != nil {
				n, _ := strconv.ParseUint(m[1], 10, 32)
				bytes = n << 10
				if strings.EqualFold(m[2], "M") {
					bytes = n << 20
				}
			}
		}
		mbps := 20 + rng.IntN(180)
		dur := time.Duration(float64(bytes*8) / float64(mbps*1_000_000) * float64(time.Second))
		rom := now.Add(-dur - 3*time.Duration(base)*time.Millisecond)
		tcpReq := rom.Add(-time.Duration(base) * time.Millisecond)
		tcpResp := tcpReq.Add(time.Duration(base) * time.Millisecond)
		bom := rom.Add(time.Duration(base) * time.Millisecond)
		eom := bom.Add(dur)
		ts := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }
		out.values["ROMTime"], out.values["BOMTime"], out.values["EOMTime"] = ts(rom), ts(bom), ts(eom)
		out.values["TCPOpenRequestTime"], out.values["TCPOpenResponseTime"] = ts(tcpReq), ts(tcpResp)
		overhead := bytes + bytes/30 // headers, acks
		if kind == diagDownload {
			out.values["TestBytesReceived"] = strconv.FormatUint(bytes, 10)
			out.values["TotalBytesReceived"] = strconv.FormatUint(overhead, 10)
		} else {
			out.values["TotalBytesSent"] = strconv.FormatUint(overhead, 10)
		}
	case diagNSLookup:
		out.state = "Complete"
		ok := 0
		for range count {
			a := [6]string{"Success", "NonAuthoritative", host, fakeAddr(host), "100.64.0.53", u(base/2 + rng.IntN(5) + 1)}
			if !resolves {
				a = [6]string{"Error_HostNameNotResolved", "None", "", "", "100.64.0.53", u(base/2 + 1)}
			} else {
				ok++
			}
			out.answers = append(out.answers, a)
		}
		out.values["SuccessCount"] = u(ok)
	}
	return out
}
