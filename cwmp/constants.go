package cwmp

import "strings"

// Event codes carried in Inform EventStructs (TR-069 §3.7.1.5).
const (
	EventBootstrap                       = "0 BOOTSTRAP"
	EventBoot                            = "1 BOOT"
	EventPeriodic                        = "2 PERIODIC"
	EventScheduled                       = "3 SCHEDULED"
	EventValueChange                     = "4 VALUE CHANGE"
	EventKicked                          = "5 KICKED"
	EventConnectionRequest               = "6 CONNECTION REQUEST"
	EventTransferComplete                = "7 TRANSFER COMPLETE"
	EventDiagnosticsComplete             = "8 DIAGNOSTICS COMPLETE"
	EventRequestDownload                 = "9 REQUEST DOWNLOAD"
	EventAutonomousTransferComplete      = "10 AUTONOMOUS TRANSFER COMPLETE"
	EventDUStateChangeComplete           = "11 DU STATE CHANGE COMPLETE"
	EventAutonomousDUStateChangeComplete = "12 AUTONOMOUS DU STATE CHANGE COMPLETE"
	EventWakeup                          = "13 WAKEUP"
	EventHeartbeat                       = "14 HEARTBEAT"
	EventMReboot                         = "M Reboot"
	EventMScheduleInform                 = "M ScheduleInform"
	EventMDownload                       = "M Download"
	EventMScheduleDownload               = "M ScheduleDownload"
	EventMUpload                         = "M Upload"
	EventMChangeDUState                  = "M ChangeDUState"
)

// ACS fault codes (sent by the ACS to the CPE).
const (
	FaultACSMethodNotSupported  uint32 = 8000
	FaultACSRequestDenied       uint32 = 8001
	FaultACSInternalError       uint32 = 8002
	FaultACSInvalidArguments    uint32 = 8003
	FaultACSResourcesExceeded   uint32 = 8004
	FaultACSRetryRequest        uint32 = 8005
	FaultACSVersionIncompatible uint32 = 8006
)

// CPE fault codes (sent by the CPE to the ACS).
const (
	FaultMethodNotSupported      uint32 = 9000
	FaultRequestDenied           uint32 = 9001
	FaultInternalError           uint32 = 9002
	FaultInvalidArguments        uint32 = 9003
	FaultResourcesExceeded       uint32 = 9004
	FaultInvalidParameterName    uint32 = 9005
	FaultInvalidParameterType    uint32 = 9006
	FaultInvalidParameterValue   uint32 = 9007
	FaultNonWritableParameter    uint32 = 9008
	FaultNotificationRejected    uint32 = 9009
	FaultDownloadFailure         uint32 = 9010
	FaultUploadFailure           uint32 = 9011
	FaultTransferServerAuth      uint32 = 9012
	FaultUnsupportedProtocol     uint32 = 9013
	FaultMulticastJoin           uint32 = 9014
	FaultContactFileServer       uint32 = 9015
	FaultAccessFile              uint32 = 9016
	FaultCompleteDownload        uint32 = 9017
	FaultFileCorrupted           uint32 = 9018
	FaultFileAuthentication      uint32 = 9019
	FaultTimeWindow              uint32 = 9020
	FaultCancelNotPermitted      uint32 = 9021
	FaultInvalidUUID             uint32 = 9022
	FaultUnknownExecutionEnv     uint32 = 9023
	FaultDisabledExecutionEnv    uint32 = 9024
	FaultDUExecutionEnvMismatch  uint32 = 9025
	FaultDuplicateDU             uint32 = 9026
	FaultSystemResourcesExceeded uint32 = 9027
	FaultUnknownDU               uint32 = 9028
	FaultInvalidDUState          uint32 = 9029
	FaultDUDowngradeNotPermitted uint32 = 9030
	FaultDUVersionNotSpecified   uint32 = 9031
	FaultDUVersionExists         uint32 = 9032
)

var faultMessages = map[uint32]string{
	8000: "Method not supported",
	8001: "Request denied (no reason specified)",
	8002: "Internal error",
	8003: "Invalid arguments",
	8004: "Resources exceeded",
	8005: "Retry request",
	8006: "ACS version incompatible with CPE",
	9000: "Method not supported",
	9001: "Request denied (no reason specified)",
	9002: "Internal error",
	9003: "Invalid arguments",
	9004: "Resources exceeded",
	9005: "Invalid parameter name",
	9006: "Invalid parameter type",
	9007: "Invalid parameter value",
	9008: "Attempt to set a non-writable parameter",
	9009: "Notification request rejected",
	9010: "File transfer failure",
	9011: "Upload failure",
	9012: "File transfer server authentication failure",
	9013: "Unsupported protocol for file transfer",
	9014: "File transfer failure: unable to join multicast group",
	9015: "File transfer failure: unable to contact file server",
	9016: "File transfer failure: unable to access file",
	9017: "File transfer failure: unable to complete download",
	9018: "File transfer failure: file corrupted",
	9019: "File transfer failure: file authentication failure",
	9020: "File transfer failure: unable to complete download within specified time windows",
	9021: "Cancelation of file transfer not permitted in current transfer state",
	9022: "Invalid UUID Format",
	9023: "Unknown Execution Environment",
	9024: "Disabled Execution Environment",
	9025: "Deployment Unit to Execution Environment Mismatch",
	9026: "Duplicate Deployment Unit",
	9027: "System Resources Exceeded",
	9028: "Unknown Deployment Unit",
	9029: "Invalid Deployment Unit State",
	9030: "Invalid Deployment Unit Update: Downgrade not permitted",
	9031: "Invalid Deployment Unit Update: Version not specified",
	9032: "Invalid Deployment Unit Update: Version already exists",
}

// FaultMessage returns the spec's meaning of a fault code, or a generic text
// for vendor and reserved ranges.
func FaultMessage(code uint32) string {
	if m, ok := faultMessages[code]; ok {
		return m
	}
	switch {
	case code >= 8800 && code <= 8899:
		return "Vendor-specific ACS fault"
	case code >= 9800 && code <= 9899:
		return "Vendor-specific CPE fault"
	case code >= 8000 && code <= 8999:
		return "Reserved ACS fault"
	case code >= 9000 && code <= 9999:
		return "Reserved CPE fault"
	}
	return "Unknown fault"
}

// NewFault builds a Fault for code. An empty msg takes FaultMessage(code).
// The SOAP faultcode is "Client" for faults about the request (invalid
// arguments, names, types, values, non-writable) and "Server" otherwise.
func NewFault(code uint32, msg string) *Fault {
	if msg == "" {
		msg = FaultMessage(code)
	}
	soap := "Server"
	switch code {
	case FaultACSInvalidArguments, FaultACSRequestDenied, FaultInvalidArguments, FaultRequestDenied,
		FaultInvalidParameterName, FaultInvalidParameterType, FaultInvalidParameterValue,
		FaultNonWritableParameter, FaultNotificationRejected:
		soap = "Client"
	}
	return &Fault{SOAPCode: soap, SOAPString: "CWMP fault", Code: code, String: msg}
}

// standardEvents are the event codes TR-069 defines, as it writes them.
var standardEvents = []string{
	EventBootstrap, EventBoot, EventPeriodic, EventScheduled, EventValueChange,
	EventKicked, EventConnectionRequest, EventTransferComplete, EventDiagnosticsComplete,
	EventRequestDownload, EventAutonomousTransferComplete, EventDUStateChangeComplete,
	EventAutonomousDUStateChangeComplete, EventWakeup, EventHeartbeat, EventMReboot,
	EventMScheduleInform, EventMDownload, EventMScheduleDownload, EventMUpload, EventMChangeDUState,
}

// canonicalEvents maps the lower-case, single-spaced form of every standard
// event code to the code as TR-069 writes it.
var canonicalEvents = func() map[string]string {
	m := make(map[string]string, len(standardEvents))
	for _, c := range standardEvents {
		m[strings.ToLower(c)] = c
	}
	return m
}()

// CanonicalEventCode returns a standard event code in TR-069's spelling
// whatever case and spacing the CPE used ("1 boot", " 1  Boot " → "1 BOOT"),
// so that a CPE writing it differently is still seen to have booted. Other
// codes (vendor "X <OUI> …" events) are returned trimmed, otherwise as
// sent.
func CanonicalEventCode(code string) string {
	code = strings.TrimSpace(code)
	for _, c := range standardEvents {
		if code == c {
			return c // the common case, without allocating
		}
	}
	if c, ok := canonicalEvents[strings.ToLower(strings.Join(strings.Fields(code), " "))]; ok {
		return c
	}
	return code
}
