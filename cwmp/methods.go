package cwmp

import "fmt"

// Method names. Each message type's Method returns one of these.
const (
	MethodGetRPCMethods                           = "GetRPCMethods"
	MethodGetRPCMethodsResponse                   = "GetRPCMethodsResponse"
	MethodSetParameterValues                      = "SetParameterValues"
	MethodSetParameterValuesResponse              = "SetParameterValuesResponse"
	MethodGetParameterValues                      = "GetParameterValues"
	MethodGetParameterValuesResponse              = "GetParameterValuesResponse"
	MethodGetParameterNames                       = "GetParameterNames"
	MethodGetParameterNamesResponse               = "GetParameterNamesResponse"
	MethodSetParameterAttributes                  = "SetParameterAttributes"
	MethodSetParameterAttributesResponse          = "SetParameterAttributesResponse"
	MethodGetParameterAttributes                  = "GetParameterAttributes"
	MethodGetParameterAttributesResponse          = "GetParameterAttributesResponse"
	MethodAddObject                               = "AddObject"
	MethodAddObjectResponse                       = "AddObjectResponse"
	MethodDeleteObject                            = "DeleteObject"
	MethodDeleteObjectResponse                    = "DeleteObjectResponse"
	MethodReboot                                  = "Reboot"
	MethodRebootResponse                          = "RebootResponse"
	MethodDownload                                = "Download"
	MethodDownloadResponse                        = "DownloadResponse"
	MethodUpload                                  = "Upload"
	MethodUploadResponse                          = "UploadResponse"
	MethodFactoryReset                            = "FactoryReset"
	MethodFactoryResetResponse                    = "FactoryResetResponse"
	MethodScheduleInform                          = "ScheduleInform"
	MethodScheduleInformResponse                  = "ScheduleInformResponse"
	MethodScheduleDownload                        = "ScheduleDownload"
	MethodScheduleDownloadResponse                = "ScheduleDownloadResponse"
	MethodCancelTransfer                          = "CancelTransfer"
	MethodCancelTransferResponse                  = "CancelTransferResponse"
	MethodGetQueuedTransfers                      = "GetQueuedTransfers"
	MethodGetQueuedTransfersResponse              = "GetQueuedTransfersResponse"
	MethodGetAllQueuedTransfers                   = "GetAllQueuedTransfers"
	MethodGetAllQueuedTransfersResponse           = "GetAllQueuedTransfersResponse"
	MethodChangeDUState                           = "ChangeDUState"
	MethodChangeDUStateResponse                   = "ChangeDUStateResponse"
	MethodSetVouchers                             = "SetVouchers"
	MethodSetVouchersResponse                     = "SetVouchersResponse"
	MethodGetOptions                              = "GetOptions"
	MethodGetOptionsResponse                      = "GetOptionsResponse"
	MethodInform                                  = "Inform"
	MethodInformResponse                          = "InformResponse"
	MethodTransferComplete                        = "TransferComplete"
	MethodTransferCompleteResponse                = "TransferCompleteResponse"
	MethodAutonomousTransferComplete              = "AutonomousTransferComplete"
	MethodAutonomousTransferCompleteResponse      = "AutonomousTransferCompleteResponse"
	MethodRequestDownload                         = "RequestDownload"
	MethodRequestDownloadResponse                 = "RequestDownloadResponse"
	MethodDUStateChangeComplete                   = "DUStateChangeComplete"
	MethodDUStateChangeCompleteResponse           = "DUStateChangeCompleteResponse"
	MethodAutonomousDUStateChangeComplete         = "AutonomousDUStateChangeComplete"
	MethodAutonomousDUStateChangeCompleteResponse = "AutonomousDUStateChangeCompleteResponse"
	MethodKicked                                  = "Kicked"
	MethodKickedResponse                          = "KickedResponse"
	MethodFault                                   = "Fault"
)

// Method returns "GetRPCMethods".
func (*GetRPCMethods) Method() string { return MethodGetRPCMethods }

// Method returns "GetRPCMethodsResponse".
func (*GetRPCMethodsResponse) Method() string { return MethodGetRPCMethodsResponse }

// Method returns "SetParameterValues".
func (*SetParameterValues) Method() string { return MethodSetParameterValues }

// Method returns "SetParameterValuesResponse".
func (*SetParameterValuesResponse) Method() string { return MethodSetParameterValuesResponse }

// Method returns "GetParameterValues".
func (*GetParameterValues) Method() string { return MethodGetParameterValues }

// Method returns "GetParameterValuesResponse".
func (*GetParameterValuesResponse) Method() string { return MethodGetParameterValuesResponse }

// Method returns "GetParameterNames".
func (*GetParameterNames) Method() string { return MethodGetParameterNames }

// Method returns "GetParameterNamesResponse".
func (*GetParameterNamesResponse) Method() string { return MethodGetParameterNamesResponse }

// Method returns "SetParameterAttributes".
func (*SetParameterAttributes) Method() string { return MethodSetParameterAttributes }

// Method returns "SetParameterAttributesResponse".
func (*SetParameterAttributesResponse) Method() string { return MethodSetParameterAttributesResponse }

// Method returns "GetParameterAttributes".
func (*GetParameterAttributes) Method() string { return MethodGetParameterAttributes }

// Method returns "GetParameterAttributesResponse".
func (*GetParameterAttributesResponse) Method() string { return MethodGetParameterAttributesResponse }

// Method returns "AddObject".
func (*AddObject) Method() string { return MethodAddObject }

// Method returns "AddObjectResponse".
func (*AddObjectResponse) Method() string { return MethodAddObjectResponse }

// Method returns "DeleteObject".
func (*DeleteObject) Method() string { return MethodDeleteObject }

// Method returns "DeleteObjectResponse".
func (*DeleteObjectResponse) Method() string { return MethodDeleteObjectResponse }

// Method returns "Reboot".
func (*Reboot) Method() string { return MethodReboot }

// Method returns "RebootResponse".
func (*RebootResponse) Method() string { return MethodRebootResponse }

// Method returns "Download".
func (*Download) Method() string { return MethodDownload }

// Method returns "DownloadResponse".
func (*DownloadResponse) Method() string { return MethodDownloadResponse }

// Method returns "Upload".
func (*Upload) Method() string { return MethodUpload }

// Method returns "UploadResponse".
func (*UploadResponse) Method() string { return MethodUploadResponse }

// Method returns "FactoryReset".
func (*FactoryReset) Method() string { return MethodFactoryReset }

// Method returns "FactoryResetResponse".
func (*FactoryResetResponse) Method() string { return MethodFactoryResetResponse }

// Method returns "ScheduleInform".
func (*ScheduleInform) Method() string { return MethodScheduleInform }

// Method returns "ScheduleInformResponse".
func (*ScheduleInformResponse) Method() string { return MethodScheduleInformResponse }

// Method returns "ScheduleDownload".
func (*ScheduleDownload) Method() string { return MethodScheduleDownload }

// Method returns "ScheduleDownloadResponse".
func (*ScheduleDownloadResponse) Method() string { return MethodScheduleDownloadResponse }

// Method returns "CancelTransfer".
func (*CancelTransfer) Method() string { return MethodCancelTransfer }

// Method returns "CancelTransferResponse".
func (*CancelTransferResponse) Method() string { return MethodCancelTransferResponse }

// Method returns "GetQueuedTransfers".
func (*GetQueuedTransfers) Method() string { return MethodGetQueuedTransfers }

// Method returns "GetQueuedTransfersResponse".
func (*GetQueuedTransfersResponse) Method() string { return MethodGetQueuedTransfersResponse }

// Method returns "GetAllQueuedTransfers".
func (*GetAllQueuedTransfers) Method() string { return MethodGetAllQueuedTransfers }

// Method returns "GetAllQueuedTransfersResponse".
func (*GetAllQueuedTransfersResponse) Method() string { return MethodGetAllQueuedTransfersResponse }

// Method returns "ChangeDUState".
func (*ChangeDUState) Method() string { return MethodChangeDUState }

// Method returns "ChangeDUStateResponse".
func (*ChangeDUStateResponse) Method() string { return MethodChangeDUStateResponse }

// Method returns "SetVouchers".
func (*SetVouchers) Method() string { return MethodSetVouchers }

// Method returns "SetVouchersResponse".
func (*SetVouchersResponse) Method() string { return MethodSetVouchersResponse }

// Method returns "GetOptions".
func (*GetOptions) Method() string { return MethodGetOptions }

// Method returns "GetOptionsResponse".
func (*GetOptionsResponse) Method() string { return MethodGetOptionsResponse }

// Method returns "Inform".
func (*Inform) Method() string { return MethodInform }

// Method returns "InformResponse".
func (*InformResponse) Method() string { return MethodInformResponse }

// Method returns "TransferComplete".
func (*TransferComplete) Method() string { return MethodTransferComplete }

// Method returns "TransferCompleteResponse".
func (*TransferCompleteResponse) Method() string { return MethodTransferCompleteResponse }

// Method returns "AutonomousTransferComplete".
func (*AutonomousTransferComplete) Method() string { return MethodAutonomousTransferComplete }

// Method returns "AutonomousTransferCompleteResponse".
func (*AutonomousTransferCompleteResponse) Method() string {
	return MethodAutonomousTransferCompleteResponse
}

// Method returns "RequestDownload".
func (*RequestDownload) Method() string { return MethodRequestDownload }

// Method returns "RequestDownloadResponse".
func (*RequestDownloadResponse) Method() string { return MethodRequestDownloadResponse }

// Method returns "DUStateChangeComplete".
func (*DUStateChangeComplete) Method() string { return MethodDUStateChangeComplete }

// Method returns "DUStateChangeCompleteResponse".
func (*DUStateChangeCompleteResponse) Method() string { return MethodDUStateChangeCompleteResponse }

// Method returns "AutonomousDUStateChangeComplete".
func (*AutonomousDUStateChangeComplete) Method() string { return MethodAutonomousDUStateChangeComplete }

// Method returns "AutonomousDUStateChangeCompleteResponse".
func (*AutonomousDUStateChangeCompleteResponse) Method() string {
	return MethodAutonomousDUStateChangeCompleteResponse
}

// Method returns "Kicked".
func (*Kicked) Method() string { return MethodKicked }

// Method returns "KickedResponse".
func (*KickedResponse) Method() string { return MethodKickedResponse }

// Method returns "Fault".
func (*Fault) Method() string { return MethodFault }

// Error makes a Fault usable as an error.
func (f *Fault) Error() string {
	return fmt.Sprintf("cwmp fault %d: %s", f.Code, f.String)
}

// newMessage returns a zero value of the message with the given local name,
// or nil when the name is not a CWMP method the codec knows.
func newMessage(method string) Message {
	switch method {
	case MethodGetRPCMethods:
		return new(GetRPCMethods)
	case MethodGetRPCMethodsResponse:
		return new(GetRPCMethodsResponse)
	case MethodSetParameterValues:
		return new(SetParameterValues)
	case MethodSetParameterValuesResponse:
		return new(SetParameterValuesResponse)
	case MethodGetParameterValues:
		return new(GetParameterValues)
	case MethodGetParameterValuesResponse:
		return new(GetParameterValuesResponse)
	case MethodGetParameterNames:
		return new(GetParameterNames)
	case MethodGetParameterNamesResponse:
		return new(GetParameterNamesResponse)
	case MethodSetParameterAttributes:
		return new(SetParameterAttributes)
	case MethodSetParameterAttributesResponse:
		return new(SetParameterAttributesResponse)
	case MethodGetParameterAttributes:
		return new(GetParameterAttributes)
	case MethodGetParameterAttributesResponse:
		return new(GetParameterAttributesResponse)
	case MethodAddObject:
		return new(AddObject)
	case MethodAddObjectResponse:
		return new(AddObjectResponse)
	case MethodDeleteObject:
		return new(DeleteObject)
	case MethodDeleteObjectResponse:
		return new(DeleteObjectResponse)
	case MethodReboot:
		return new(Reboot)
	case MethodRebootResponse:
		return new(RebootResponse)
	case MethodDownload:
		return new(Download)
	case MethodDownloadResponse:
		return new(DownloadResponse)
	case MethodUpload:
		return new(Upload)
	case MethodUploadResponse:
		return new(UploadResponse)
	case MethodFactoryReset:
		return new(FactoryReset)
	case MethodFactoryResetResponse:
		return new(FactoryResetResponse)
	case MethodScheduleInform:
		return new(ScheduleInform)
	case MethodScheduleInformResponse:
		return new(ScheduleInformResponse)
	case MethodScheduleDownload:
		return new(ScheduleDownload)
	case MethodScheduleDownloadResponse:
		return new(ScheduleDownloadResponse)
	case MethodCancelTransfer:
		return new(CancelTransfer)
	case MethodCancelTransferResponse:
		return new(CancelTransferResponse)
	case MethodGetQueuedTransfers:
		return new(GetQueuedTransfers)
	case MethodGetQueuedTransfersResponse:
		return new(GetQueuedTransfersResponse)
	case MethodGetAllQueuedTransfers:
		return new(GetAllQueuedTransfers)
	case MethodGetAllQueuedTransfersResponse:
		return new(GetAllQueuedTransfersResponse)
	case MethodChangeDUState:
		return new(ChangeDUState)
	case MethodChangeDUStateResponse:
		return new(ChangeDUStateResponse)
	case MethodSetVouchers:
		return new(SetVouchers)
	case MethodSetVouchersResponse:
		return new(SetVouchersResponse)
	case MethodGetOptions:
		return new(GetOptions)
	case MethodGetOptionsResponse:
		return new(GetOptionsResponse)
	case MethodInform:
		return new(Inform)
	case MethodInformResponse:
		return new(InformResponse)
	case MethodTransferComplete:
		return new(TransferComplete)
	case MethodTransferCompleteResponse:
		return new(TransferCompleteResponse)
	case MethodAutonomousTransferComplete:
		return new(AutonomousTransferComplete)
	case MethodAutonomousTransferCompleteResponse:
		return new(AutonomousTransferCompleteResponse)
	case MethodRequestDownload:
		return new(RequestDownload)
	case MethodRequestDownloadResponse:
		return new(RequestDownloadResponse)
	case MethodDUStateChangeComplete:
		return new(DUStateChangeComplete)
	case MethodDUStateChangeCompleteResponse:
		return new(DUStateChangeCompleteResponse)
	case MethodAutonomousDUStateChangeComplete:
		return new(AutonomousDUStateChangeComplete)
	case MethodAutonomousDUStateChangeCompleteResponse:
		return new(AutonomousDUStateChangeCompleteResponse)
	case MethodKicked:
		return new(Kicked)
	case MethodKickedResponse:
		return new(KickedResponse)
	case MethodFault:
		return new(Fault)
	}
	return nil
}
