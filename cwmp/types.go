package cwmp

import (
	"strconv"
	"time"
)

// Message is one CWMP RPC request, response or fault: the single child of a
// SOAP Body.
type Message interface {
	// Method is the element's local name, such as "GetParameterValues",
	// "GetParameterValuesResponse" or "Fault".
	Method() string
}

// Envelope is a decoded SOAP envelope: the CWMP header fields and one body
// message. A nil Body means an envelope with an empty SOAP Body.
type Envelope struct {
	// Namespace is the CWMP namespace URI of the envelope, for example
	// "urn:dslforum-org:cwmp-1-0". Encode uses NS10 when it is empty.
	Namespace string
	// ID is cwmp:ID, which the responder echoes. HasID tells an absent ID
	// from an empty one (easycwmp sends an empty one).
	ID    string
	HasID bool
	// HoldRequests is cwmp:HoldRequests (ACS to CPE).
	HoldRequests bool
	// NoMoreRequests is the deprecated cwmp:NoMoreRequests (CPE to ACS).
	NoMoreRequests bool
	// SessionTimeout is cwmp:SessionTimeout in seconds (CWMP 1.3+); 0 when absent.
	SessionTimeout uint32
	// SupportedCWMPVersions is the CPE's comma-separated list (CWMP 1.4).
	SupportedCWMPVersions string
	// UseCWMPVersion is the ACS's chosen version (CWMP 1.4).
	UseCWMPVersion string
	// Body is the RPC; nil for an empty Body.
	Body Message
	// Skipped details the list entries Decode left out of Body because
	// they were malformed (at most 64; SkippedTotal counts them all). The
	// rest of the message is decoded: the caller logs and counts these.
	// Encode ignores both fields.
	Skipped      []SkippedEntry
	SkippedTotal int
}

// SkippedEntry is one list entry Decode left out: the list (its element
// name, such as "ParameterList"), the entry's position in it from 0, the
// field that failed, why ("invalid_boolean", "invalid_int",
// "invalid_unsignedInt", "missing_name", "missing_eventcode") and the
// offending text, cut to 64 bytes. Reason is a short fixed label, fit for
// a metric.
type SkippedEntry struct {
	List   string
	Index  int
	Field  string
	Reason string
	Value  string
}

// String describes the entry for a log line.
func (s SkippedEntry) String() string {
	msg := s.List + "[" + strconv.Itoa(s.Index) + "]." + s.Field + ": " + s.Reason
	if s.Value != "" {
		msg += " " + strconv.Quote(s.Value)
	}
	return msg
}

// XSD type names carried in xsi:type on parameter values.
const (
	TypeString       = "xsd:string"
	TypeInt          = "xsd:int"
	TypeUnsignedInt  = "xsd:unsignedInt"
	TypeBoolean      = "xsd:boolean"
	TypeDateTime     = "xsd:dateTime"
	TypeBase64       = "xsd:base64"
	TypeHexBinary    = "xsd:hexBinary"
	TypeLong         = "xsd:long"
	TypeUnsignedLong = "xsd:unsignedLong"
)

// ParameterValue is ParameterValueStruct: a name, its value as sent on the
// wire, and its xsd type (TypeString when the sender gave none).
type ParameterValue struct {
	Name  string
	Value string
	Type  string
}

// ParameterInfo is ParameterInfoStruct from GetParameterNamesResponse.
type ParameterInfo struct {
	Name     string
	Writable bool
}

// ParameterAttribute is ParameterAttributeStruct from GetParameterAttributesResponse.
type ParameterAttribute struct {
	Name         string
	Notification int
	AccessList   []string
}

// SetParameterAttribute is SetParameterAttributesStruct.
type SetParameterAttribute struct {
	Name               string
	NotificationChange bool
	Notification       int
	AccessListChange   bool
	AccessList         []string
}

// DeviceID is DeviceIdStruct from the Inform.
type DeviceID struct {
	Manufacturer string
	OUI          string
	ProductClass string
	SerialNumber string
}

// Event is EventStruct: an event code and its command key.
type Event struct {
	Code       string
	CommandKey string
}

// FaultStruct is the fault carried by TransferComplete and friends; Code 0
// means success.
type FaultStruct struct {
	Code   uint32
	String string
}

// QueuedTransfer is QueuedTransferStruct.
type QueuedTransfer struct {
	CommandKey string
	State      int
}

// AllQueuedTransfer is AllQueuedTransferStruct.
type AllQueuedTransfer struct {
	CommandKey     string
	State          int
	IsDownload     bool
	FileType       string
	FileSize       uint32
	TargetFileName string
}

// TimeWindow is TimeWindowStruct of ScheduleDownload.
type TimeWindow struct {
	WindowStart uint32
	WindowEnd   uint32
	WindowMode  string
	UserMessage string
	MaxRetries  int
}

// Option is OptionStruct of GetOptionsResponse. A zero ExpirationDate means
// the element was absent.
type Option struct {
	OptionName     string
	VoucherSN      uint32
	State          uint32
	Mode           int
	StartDate      time.Time
	ExpirationDate time.Time
	IsTransferable int
}

// Arg is ArgStruct of RequestDownload.
type Arg struct {
	Name  string
	Value string
}

// OpResult is OpResultStruct of DUStateChangeComplete.
type OpResult struct {
	UUID                 string
	DeploymentUnitRef    string
	Version              string
	CurrentState         string
	Resolved             bool
	ExecutionUnitRefList string
	StartTime            time.Time
	CompleteTime         time.Time
	Fault                FaultStruct
}

// AutonOpResult is AutonOpResultStruct of AutonomousDUStateChangeComplete.
type AutonOpResult struct {
	OpResult
	OperationPerformed string
}

// DUOperation is one operation of ChangeDUState. Kind is "Install",
// "Update" or "Uninstall" (encoded as xsi:type="cwmp:<Kind>OpStruct"); the
// fields that do not belong to the kind are left empty.
type DUOperation struct {
	Kind            string
	URL             string
	UUID            string
	Username        string
	Password        string
	Version         string
	ExecutionEnvRef string
}

// ---- CPE methods (sent by the ACS, answered by the CPE) ----

// GetRPCMethods asks the peer for its method list; both sides may send it.
type GetRPCMethods struct{}

// GetRPCMethodsResponse lists the methods the peer supports.
type GetRPCMethodsResponse struct{ MethodList []string }

// SetParameterValues writes parameters atomically.
type SetParameterValues struct {
	ParameterList []ParameterValue
	ParameterKey  string
}

// SetParameterValuesResponse reports 0 (applied) or 1 (committed, not yet applied).
type SetParameterValuesResponse struct{ Status int }

// GetParameterValues reads parameters; a name ending in "." is a partial path.
type GetParameterValues struct{ ParameterNames []string }

// GetParameterValuesResponse carries the values read.
type GetParameterValuesResponse struct{ ParameterList []ParameterValue }

// GetParameterNames discovers the data model below ParameterPath.
type GetParameterNames struct {
	ParameterPath string
	NextLevel     bool
}

// GetParameterNamesResponse lists names and writability.
type GetParameterNamesResponse struct{ ParameterList []ParameterInfo }

// SetParameterAttributes changes notification and access lists.
type SetParameterAttributes struct{ ParameterList []SetParameterAttribute }

// SetParameterAttributesResponse is empty.
type SetParameterAttributesResponse struct{}

// GetParameterAttributes reads notification and access lists.
type GetParameterAttributes struct{ ParameterNames []string }

// GetParameterAttributesResponse carries the attributes read.
type GetParameterAttributesResponse struct{ ParameterList []ParameterAttribute }

// AddObject creates an instance of the table ObjectName (ends with ".").
type AddObject struct {
	ObjectName   string
	ParameterKey string
}

// AddObjectResponse gives the new instance number.
type AddObjectResponse struct {
	InstanceNumber uint32
	Status         int
}

// DeleteObject removes the instance ObjectName (ends with ".").
type DeleteObject struct {
	ObjectName   string
	ParameterKey string
}

// DeleteObjectResponse reports 0 (applied) or 1 (committed, not yet applied).
type DeleteObjectResponse struct{ Status int }

// Reboot asks the CPE to reboot after the session.
type Reboot struct{ CommandKey string }

// RebootResponse is empty.
type RebootResponse struct{}

// Download asks the CPE to fetch a file. All ten elements are always encoded.
type Download struct {
	CommandKey     string
	FileType       string
	URL            string
	Username       string
	Password       string
	FileSize       uint32
	TargetFileName string
	DelaySeconds   uint32
	SuccessURL     string
	FailureURL     string
}

// DownloadResponse reports 0 (done) or 1 (TransferComplete will follow).
type DownloadResponse struct {
	Status       int
	StartTime    time.Time
	CompleteTime time.Time
}

// Upload asks the CPE to send a file to URL.
type Upload struct {
	CommandKey   string
	FileType     string
	URL          string
	Username     string
	Password     string
	DelaySeconds uint32
}

// UploadResponse reports 0 (done) or 1 (TransferComplete will follow).
type UploadResponse struct {
	Status       int
	StartTime    time.Time
	CompleteTime time.Time
}

// FactoryReset resets the CPE to its factory defaults.
type FactoryReset struct{}

// FactoryResetResponse is empty.
type FactoryResetResponse struct{}

// ScheduleInform asks for an Inform DelaySeconds from now.
type ScheduleInform struct {
	DelaySeconds uint32
	CommandKey   string
}

// ScheduleInformResponse is empty.
type ScheduleInformResponse struct{}

// ScheduleDownload asks for a download within time windows (CWMP 1.2).
type ScheduleDownload struct {
	CommandKey     string
	FileType       string
	URL            string
	Username       string
	Password       string
	FileSize       uint32
	TargetFileName string
	TimeWindowList []TimeWindow
}

// ScheduleDownloadResponse is empty.
type ScheduleDownloadResponse struct{}

// CancelTransfer cancels a queued transfer by command key (CWMP 1.2).
type CancelTransfer struct{ CommandKey string }

// CancelTransferResponse is empty.
type CancelTransferResponse struct{}

// GetQueuedTransfers lists queued transfers.
type GetQueuedTransfers struct{}

// GetQueuedTransfersResponse carries the queued transfers.
type GetQueuedTransfersResponse struct{ TransferList []QueuedTransfer }

// GetAllQueuedTransfers lists all queued transfers with details.
type GetAllQueuedTransfers struct{}

// GetAllQueuedTransfersResponse carries the queued transfers with details.
type GetAllQueuedTransfersResponse struct{ TransferList []AllQueuedTransfer }

// ChangeDUState installs, updates or uninstalls deployment units (CWMP 1.2).
type ChangeDUState struct {
	Operations []DUOperation
	CommandKey string
}

// ChangeDUStateResponse is empty.
type ChangeDUStateResponse struct{}

// SetVouchers sends option vouchers; each entry is base64 text.
type SetVouchers struct{ VoucherList []string }

// SetVouchersResponse is empty.
type SetVouchersResponse struct{}

// GetOptions reads option states; an empty OptionName means all.
type GetOptions struct{ OptionName string }

// GetOptionsResponse carries the options.
type GetOptionsResponse struct{ OptionList []Option }

// ---- ACS methods (sent by the CPE, answered by the ACS) ----

// Inform opens every session.
type Inform struct {
	DeviceId      DeviceID
	Event         []Event
	MaxEnvelopes  uint32
	CurrentTime   time.Time
	RetryCount    uint32
	ParameterList []ParameterValue
}

// InformResponse answers the Inform; MaxEnvelopes is always 1.
type InformResponse struct{ MaxEnvelopes uint32 }

// TransferComplete reports the end of a Download or Upload the ACS asked for.
type TransferComplete struct {
	CommandKey   string
	FaultStruct  FaultStruct
	StartTime    time.Time
	CompleteTime time.Time
}

// TransferCompleteResponse is empty.
type TransferCompleteResponse struct{}

// AutonomousTransferComplete reports a transfer the ACS did not ask for (CWMP 1.1).
type AutonomousTransferComplete struct {
	AnnounceURL    string
	TransferURL    string
	IsDownload     bool
	FileType       string
	FileSize       uint32
	TargetFileName string
	FaultStruct    FaultStruct
	StartTime      time.Time
	CompleteTime   time.Time
}

// AutonomousTransferCompleteResponse is empty.
type AutonomousTransferCompleteResponse struct{}

// RequestDownload asks the ACS to start a Download of FileType.
type RequestDownload struct {
	FileType    string
	FileTypeArg []Arg
}

// RequestDownloadResponse is empty.
type RequestDownloadResponse struct{}

// DUStateChangeComplete reports the results of a ChangeDUState.
type DUStateChangeComplete struct {
	Results    []OpResult
	CommandKey string
}

// DUStateChangeCompleteResponse is empty.
type DUStateChangeCompleteResponse struct{}

// AutonomousDUStateChangeComplete reports DU changes the ACS did not ask for.
type AutonomousDUStateChangeComplete struct{ Results []AutonOpResult }

// AutonomousDUStateChangeCompleteResponse is empty.
type AutonomousDUStateChangeCompleteResponse struct{}

// Kicked is the web-identity "kicked" request.
type Kicked struct {
	Command string
	Referer string
	Arg     string
	Next    string
}

// KickedResponse gives the URL to send the browser to.
type KickedResponse struct{ NextURL string }

// ---- Faults ----

// SetParameterValuesFault is one per-parameter entry of a SetParameterValues fault.
type SetParameterValuesFault struct {
	ParameterName string
	FaultCode     uint32
	FaultString   string
}

// Fault is a SOAP Fault with a cwmp:Fault detail, in either direction. It
// is also an error.
type Fault struct {
	// SOAPCode is faultcode: "Client" or "Server" (prefix stripped).
	SOAPCode string
	// SOAPString is faultstring, normally "CWMP fault".
	SOAPString string
	// Code and String are the cwmp:Fault FaultCode and FaultString.
	Code   uint32
	String string
	// SetParameterValuesFaults lists per-parameter faults (SPV only).
	SetParameterValuesFaults []SetParameterValuesFault
}
