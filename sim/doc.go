// Package sim simulates CPEs: virtual TR-098 and TR-181 devices built from
// embedded data-model templates that run CWMP sessions against any ACS URL
// and listen for connection requests.
package sim
