package fleet

import "time"

// The JSON views of the management APIs. The core and an edge answer the
// same request about the same device, task, fault or file with the same
// shape (a contract test in cmd/edgeacs holds them to it); they fill these
// types from their own records, which stay theirs. Values differ where
// the two legitimately know different things: the edge learns more about
// a device's sessions, the core keeps its tags.

// DeviceView is a device as GET /api/v1/devices lists it and GET
// /api/v1/devices/{id} shows it: identity, where it is homed and when it
// last informed, and (on the single device) its parameter tree.
type DeviceView struct {
	ID           string `json:"_id"`
	OUI          string `json:"oui"`
	ProductClass string `json:"productClass"`
	SerialNumber string `json:"serialNumber"`
	Manufacturer string `json:"manufacturer"`
	// Edge is the device's home edge: the one that last heard from it
	// (on an edge, that edge). "" while it has none (pre-registered).
	Edge string `json:"edge"`
	// Registered is when the device was first known; zero (absent) never.
	Registered time.Time `json:"registered,omitzero"`
	// LastInform is the time of its last Inform; absent before the first.
	LastInform time.Time `json:"lastInform,omitzero"`
	// LastEvents are the event codes of the last inform ("1 BOOT", ...).
	LastEvents []string `json:"lastEvents,omitempty"`
	// Tags are the core's; an edge keeps none.
	Tags []string `json:"tags,omitempty"`
	// State is "online", "late" or "offline": LastInform against the
	// device's PeriodicInformInterval (OnlineState).
	State string `json:"state,omitempty"`

	// What only the edge that serves the device learns in its sessions;
	// the core does not keep these (they are in the parameter tree, or
	// are the edge's own business).
	Root                        string    `json:"root,omitempty"`
	SoftwareVersion             string    `json:"softwareVersion,omitempty"`
	LastBoot                    time.Time `json:"lastBoot,omitzero"`
	LastBootstrap               time.Time `json:"lastBootstrap,omitzero"`
	RemoteAddr                  string    `json:"remoteAddr,omitempty"`
	ConnectionRequestURL        string    `json:"connectionRequestURL,omitempty"`
	UDPConnectionRequestAddress string    `json:"udpConnectionRequestAddress,omitempty"`
	STUNEnable                  bool      `json:"stunEnable,omitempty"`
	ConnectionRequestUsername   string    `json:"connectionRequestUsername,omitempty"`

	// Parameters is the parameter tree by path, with secrets hidden (see
	// PublicParameters); present (perhaps {}) on a single device, absent
	// in lists.
	Parameters map[string]Parameter `json:"parameters,omitzero"`
}

// Parameter is one node of a device's parameter tree as the APIs show it.
type Parameter struct {
	Value string `json:"value"`
	// Type is the xsd type ("xsd:string", ...); "" when not known (objects).
	Type string `json:"type"`
	// Timestamp is when the value was last changed or fetched.
	Timestamp time.Time `json:"timestamp,omitzero"`
	// Object marks an object node (a path ending in '.').
	Object bool `json:"object"`
	// Writable is absent until a GetParameterNames told it; only an edge
	// learns it.
	Writable *bool `json:"writable,omitempty"`
	// Notification and AccessList are the attributes, once a
	// GetParameterAttributes told them (edge only).
	Notification *int     `json:"notification,omitempty"`
	AccessList   []string `json:"accessList,omitempty"`
	// Secret marks a parameter whose value is hidden (Value is ""); see
	// IsSecretParameter.
	Secret bool `json:"secret,omitempty"`
}

// TaskView is a task as the APIs show it (GET /api/v1/tasks/{id}, task
// lists, the answer to a created task): the stored task with secrets
// hidden (PublicTask).
type TaskView struct {
	*Task
	// Redacted names what was hidden: parameter paths whose values are
	// "", and RedactedPassword for the transfer password.
	Redacted []string `json:"redacted,omitempty"`
	// Warning says why a connection request the client asked for failed;
	// the task is queued all the same.
	Warning string `json:"warning,omitempty"`
}

// FaultView is a fault recorded against a device, as GET
// /api/v1/devices/{id}/faults lists it: a task that ended in fault (ID and
// Task are the task's ID), a preset channel's ("<device>:<channel>"), or on
// an edge a failed transfer the CPE reported on its own.
type FaultView struct {
	ID     string `json:"_id"`
	Device string `json:"device"`
	Task   string `json:"task,omitempty"`
	// Channel is the preset channel a provisioning fault stopped
	// (ID "<device>:<channel>"); Retries how many retries faulted again.
	Channel   string            `json:"channel,omitempty"`
	Retries   int               `json:"retries,omitempty"`
	Code      string            `json:"code"`
	Message   string            `json:"message"`
	Detail    map[string]string `json:"detail,omitempty"`
	Timestamp time.Time         `json:"timestamp"`
}
