package fleet

import (
	"fmt"
	"strings"
	"time"
)

// Diagnostic task kinds: TR-069 diagnostics the CPE runs itself (TR-098's
// and TR-181's IPPing and TraceRoute, TR-143's download and upload
// throughput tests, TR-181's NSLookup). The edge sets the test's
// parameters and DiagnosticsState = "Requested" in one
// SetParameterValues, waits for the CPE's "8 DIAGNOSTICS COMPLETE" Inform
// (in a later session), reads the results and stores them as
// TaskResult.Diagnostic.
const (
	TaskPing                = "ping"
	TaskTraceRoute          = "traceroute"
	TaskDownloadDiagnostics = "downloadDiagnostics"
	TaskUploadDiagnostics   = "uploadDiagnostics"
	TaskNSLookup            = "nslookup"
)

// IsDiagnostic reports whether a task kind is a diagnostic, which runs
// across two sessions (the request, then the results).
func IsDiagnostic(name string) bool {
	switch name {
	case TaskPing, TaskTraceRoute, TaskDownloadDiagnostics, TaskUploadDiagnostics, TaskNSLookup:
		return true
	}
	return false
}

// Limits of the diagnostics' arguments: what TR-181 allows for the
// parameters they become (string(256) host names, NumberOfRepetitions and
// MaxHopCount ranges), so a bad request is refused before any CPE sees it.
const (
	maxDiagHost     = 256
	maxDiagCount    = 100
	maxDiagHopCount = 64
)

// validateDiagnostic checks a diagnostic task's arguments.
func (t *Task) validateDiagnostic() error {
	switch t.Name {
	case TaskPing, TaskTraceRoute, TaskNSLookup:
		if t.Host == "" {
			return fmt.Errorf("%w: %s needs host", ErrBadTask, t.Name)
		}
		if len(t.Host) > maxDiagHost || strings.ContainsAny(t.Host, " \t\r\n<>&\"'/") {
			return fmt.Errorf("%w: %s: host %q is not a host name or address", ErrBadTask, t.Name, t.Host)
		}
		if t.URL != "" || t.TestFileLength != 0 {
			return fmt.Errorf("%w: %s takes no url or testFileLength", ErrBadTask, t.Name)
		}
	case TaskDownloadDiagnostics, TaskUploadDiagnostics:
		if t.URL == "" {
			return fmt.Errorf("%w: %s needs url", ErrBadTask, t.Name)
		}
		if len(t.URL) > maxDiagHost || strings.ContainsAny(t.URL, " \t\r\n<>\"'") {
			return fmt.Errorf("%w: %s: url %q is not a URL", ErrBadTask, t.Name, t.URL)
		}
		if t.Host != "" || t.Count != 0 || t.MaxHopCount != 0 || t.DNSServer != "" {
			return fmt.Errorf("%w: %s takes url (and testFileLength), not host, count, maxHopCount or dnsServer", ErrBadTask, t.Name)
		}
		if t.Name == TaskDownloadDiagnostics && t.TestFileLength != 0 {
			return fmt.Errorf("%w: downloadDiagnostics takes no testFileLength", ErrBadTask)
		}
	}
	if t.Count > maxDiagCount {
		return fmt.Errorf("%w: %s: count %d is over %d", ErrBadTask, t.Name, t.Count, maxDiagCount)
	}
	if t.MaxHopCount > maxDiagHopCount {
		return fmt.Errorf("%w: %s: maxHopCount %d is over %d", ErrBadTask, t.Name, t.MaxHopCount, maxDiagHopCount)
	}
	if t.MaxHopCount != 0 && t.Name != TaskTraceRoute {
		return fmt.Errorf("%w: %s takes no maxHopCount", ErrBadTask, t.Name)
	}
	if t.DNSServer != "" && t.Name != TaskNSLookup {
		return fmt.Errorf("%w: %s takes no dnsServer", ErrBadTask, t.Name)
	}
	if len(t.DNSServer) > maxDiagHost || strings.ContainsAny(t.DNSServer, " \t\r\n<>&\"'/") {
		return fmt.Errorf("%w: %s: dnsServer %q is not a host name or address", ErrBadTask, t.Name, t.DNSServer)
	}
	return nil
}

// Diagnostic is what a diagnostic task found, in one typed shape per
// kind: the edge reads the CPE's results subtree and fills the part of
// its kind. State is the CPE's final DiagnosticsState ("Complete", or
// "Completed" for TR-143 tests; an "Error_..." state ends the task as a
// fault that keeps this result).
type Diagnostic struct {
	Kind  string `json:"kind" cbor:"1,keyasint"`
	State string `json:"state" cbor:"2,keyasint"`
	// Object is the data model object the test ran on, such as
	// "Device.IP.Diagnostics.IPPing.".
	Object string `json:"object" cbor:"3,keyasint"`

	Ping       *PingResult       `json:"ping,omitempty" cbor:"4,keyasint,omitempty"`
	TraceRoute *TraceRouteResult `json:"traceroute,omitempty" cbor:"5,keyasint,omitempty"`
	Transfer   *TransferResult   `json:"transfer,omitempty" cbor:"6,keyasint,omitempty"`
	NSLookup   *NSLookupResult   `json:"nslookup,omitempty" cbor:"7,keyasint,omitempty"`
}

// PingResult is an IPPing diagnostic's outcome. Times are milliseconds, as
// the data models give them.
type PingResult struct {
	Host         string `json:"host" cbor:"1,keyasint"`
	SuccessCount uint32 `json:"successCount" cbor:"2,keyasint"`
	FailureCount uint32 `json:"failureCount" cbor:"3,keyasint"`
	MinRTTms     uint32 `json:"minRTTms" cbor:"4,keyasint"`
	AvgRTTms     uint32 `json:"avgRTTms" cbor:"5,keyasint"`
	MaxRTTms     uint32 `json:"maxRTTms" cbor:"6,keyasint"`
	DataBlock    uint32 `json:"dataBlockSize,omitempty" cbor:"7,keyasint,omitempty"`
}

// TraceRouteResult is a TraceRoute diagnostic's outcome.
type TraceRouteResult struct {
	Host string `json:"host" cbor:"1,keyasint"`
	// ResponseTimeMs is the round trip to the host itself.
	ResponseTimeMs uint32     `json:"responseTimeMs" cbor:"2,keyasint"`
	Hops           []RouteHop `json:"hops" cbor:"3,keyasint"`
}

// RouteHop is one hop of a traceroute, in order from the CPE.
type RouteHop struct {
	Host    string `json:"host,omitempty" cbor:"1,keyasint,omitempty"`
	Address string `json:"address,omitempty" cbor:"2,keyasint,omitempty"`
	// ErrorCode is the ICMP error the hop answered with (0: none).
	ErrorCode uint32 `json:"errorCode,omitempty" cbor:"3,keyasint,omitempty"`
	// RTTimesMs are the round trips of the probes, in milliseconds.
	RTTimesMs []uint32 `json:"rtTimesMs,omitempty" cbor:"4,keyasint,omitempty"`
}

// TransferResult is a TR-143 download or upload test's outcome.
type TransferResult struct {
	URL string `json:"url" cbor:"1,keyasint"`
	// TestBytes is the payload moved: TestBytesReceived (download) or
	// TestFileLength (upload); TotalBytes counts every byte on the
	// interface during the test (TotalBytesReceived / TotalBytesSent).
	TestBytes  uint64 `json:"testBytes" cbor:"2,keyasint"`
	TotalBytes uint64 `json:"totalBytes" cbor:"3,keyasint"`
	// ROM: request sent; BOM: first payload byte; EOM: last payload byte.
	ROMTime time.Time `json:"romTime,omitzero" cbor:"4,keyasint,omitzero"`
	BOMTime time.Time `json:"bomTime,omitzero" cbor:"5,keyasint,omitzero"`
	EOMTime time.Time `json:"eomTime,omitzero" cbor:"6,keyasint,omitzero"`
	// TCPOpenRequestTime and TCPOpenResponseTime bound the TCP handshake.
	TCPOpenRequestTime  time.Time `json:"tcpOpenRequestTime,omitzero" cbor:"7,keyasint,omitzero"`
	TCPOpenResponseTime time.Time `json:"tcpOpenResponseTime,omitzero" cbor:"8,keyasint,omitzero"`
	// ThroughputBps is TestBytes over EOM − BOM, in bits per second (0
	// when the times do not allow it).
	ThroughputBps uint64 `json:"throughputBps" cbor:"9,keyasint"`
}

// Throughput computes ThroughputBps from the bytes and the BOM/EOM times.
func (r *TransferResult) Throughput() uint64 {
	d := r.EOMTime.Sub(r.BOMTime)
	if d <= 0 || r.TestBytes == 0 {
		return 0
	}
	return uint64(float64(r.TestBytes*8) / d.Seconds())
}

// NSLookupResult is an NSLookup diagnostic's outcome.
type NSLookupResult struct {
	HostName     string     `json:"hostName" cbor:"1,keyasint"`
	SuccessCount uint32     `json:"successCount" cbor:"2,keyasint"`
	Answers      []NSAnswer `json:"answers" cbor:"3,keyasint"`
}

// NSAnswer is one lookup's answer (one per repetition).
type NSAnswer struct {
	// Status is "Success" or the data model's "Error_..." for this try.
	Status           string   `json:"status" cbor:"1,keyasint"`
	AnswerType       string   `json:"answerType,omitempty" cbor:"2,keyasint,omitempty"`
	HostNameReturned string   `json:"hostNameReturned,omitempty" cbor:"3,keyasint,omitempty"`
	IPAddresses      []string `json:"ipAddresses,omitempty" cbor:"4,keyasint,omitempty"`
	DNSServerIP      string   `json:"dnsServerIP,omitempty" cbor:"5,keyasint,omitempty"`
	ResponseTimeMs   uint32   `json:"responseTimeMs" cbor:"6,keyasint"`
}

// DiagnosticSucceeded reports whether a DiagnosticsState is a finished
// test's: "Complete" (IPPing, TraceRoute, NSLookup) or "Completed"
// (TR-143's download and upload tests, as TR-098 and early TR-181 name it).
func DiagnosticSucceeded(state string) bool {
	return state == "Complete" || state == "Completed"
}
