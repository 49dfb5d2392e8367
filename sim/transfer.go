package sim

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
)

// File types the simulator acts on.
const (
	fileTypeFirmware = "1 Firmware Upgrade Image"
	fileTypeLog      = "2 Vendor Log File"
)

// maxDownloadSize bounds what a device fetches; a home gateway has little flash.
const maxDownloadSize = 64 << 20

// firmwareName matches "*_v<version>.bin" and "*-<version>.bin".
var firmwareName = regexp.MustCompile(`(?:_v|-)v?([0-9][0-9A-Za-z.\-]*?)\.bin$`)

// firmwareVersion picks the version a firmware image installs: the
// X-Firmware-Version header, else the file name.
func firmwareVersion(h http.Header, names ...string) string {
	if v := strings.TrimSpace(h.Get("X-Firmware-Version")); v != "" {
		return v
	}
	for _, n := range names {
		if m := firmwareName.FindStringSubmatch(path.Base(n)); m != nil {
			return m[1]
		}
	}
	return ""
}

// runTransfer performs a queued Download or Upload and returns the
// TransferComplete to report, and whether a firmware was installed.
func (d *Device) runTransfer(ctx context.Context, tr transfer) (cwmp.TransferComplete, bool) {
	tc := cwmp.TransferComplete{CommandKey: tr.req.CommandKey, StartTime: time.Now().UTC().Truncate(time.Second)}
	var code uint32
	var msg string
	firmware := false
	if tr.download {
		code, msg, firmware = d.download(ctx, tr.req)
	} else {
		code, msg = d.upload(ctx, tr.req)
	}
	tc.CompleteTime = time.Now().UTC().Truncate(time.Second)
	if code != 0 {
		tc.FaultStruct = cwmp.FaultStruct{Code: code, String: cwmp.FaultMessage(code) + ": " + msg}
		d.f.log.Debug("sim: transfer failed", "device", d.id, "url", tr.req.URL, "code", code, "err", msg)
	}
	return tc, firmware
}

// transferClient returns a client for one file transfer and how to
// release its connections.
func (d *Device) transferClient(user, pass string) (*http.Client, func()) {
	base, closeFn, timeout := d.f.sessionTransport(d.f.cfg.TransferTimeout, d.source())
	rt := base
	if user != "" {
		rt = &cwmp.DigestTransport{Username: user, Password: pass, Base: base, AllowBasic: true}
	}
	return &http.Client{Transport: rt, Timeout: timeout}, closeFn
}

// download fetches the file and "installs" it. Fault codes follow
// TransferComplete's allowed set: 9015 server unreachable, 9012 refused
// credentials, 9016 file not accessible, 9017 transfer cut short, 9018
// size mismatch, 9010 anything else.
func (d *Device) download(ctx context.Context, r cwmp.Download) (uint32, string, bool) {
	client, release := d.transferClient(r.Username, r.Password)
	defer release()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL, nil)
	if err != nil {
		return cwmp.FaultDownloadFailure, err.Error(), false
	}
	resp, err := client.Do(req)
	if err != nil {
		return cwmp.FaultContactFileServer, err.Error(), false
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return cwmp.FaultTransferServerAuth, "HTTP " + resp.Status, false
	case resp.StatusCode != http.StatusOK:
		return cwmp.FaultAccessFile, "HTTP " + resp.Status, false
	}
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxDownloadSize+1))
	if err != nil {
		return cwmp.FaultCompleteDownload, err.Error(), false
	}
	if n > maxDownloadSize {
		return cwmp.FaultDownloadFailure, "file larger than the device's storage", false
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return cwmp.FaultCompleteDownload, fmt.Sprintf("got %d of %d bytes", n, resp.ContentLength), false
	}
	if r.FileSize > 0 && uint64(n) != uint64(r.FileSize) {
		return cwmp.FaultFileCorrupted, fmt.Sprintf("file has %d bytes, FileSize says %d", n, r.FileSize), false
	}
	if r.FileType != fileTypeFirmware {
		return 0, "", false
	}
	if d.FaultsDownloads() {
		return cwmp.FaultDownloadFailure, "simulated: the device refuses this firmware (DownloadFaultRate)", false
	}
	v := firmwareVersion(resp.Header, r.TargetFileName, req.URL.Path)
	if v == "" {
		return 0, "", false
	}
	d.mu.Lock()
	if g, ok := d.tree.m.special["DeviceInfo.SoftwareVersion"]; ok {
		if i, ok := d.tree.lookup(d.tree.m.gen[g].name); ok {
			d.tree.vals[i] = v
		}
	}
	d.mu.Unlock()
	return 0, "", true
}

// upload PUTs a generated configuration dump or log to the URL.
func (d *Device) upload(ctx context.Context, r cwmp.Download) (uint32, string) {
	body := d.uploadBody(r.FileType)
	client, release := d.transferClient(r.Username, r.Password)
	defer release()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, r.URL, bytes.NewReader(body))
	if err != nil {
		return cwmp.FaultUploadFailure, err.Error()
	}
	req.Header.Set("Content-Type", "text/plain")
	resp, err := client.Do(req)
	if err != nil {
		return cwmp.FaultUploadFailure, err.Error()
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return cwmp.FaultTransferServerAuth, "HTTP " + resp.Status
	case resp.StatusCode/100 != 2:
		return cwmp.FaultUploadFailure, "HTTP " + resp.Status
	}
	return 0, ""
}

// uploadBody renders a log (for "2 Vendor Log File" and "4 …") or a
// configuration dump of every readable parameter.
func (d *Device) uploadBody(fileType string) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b bytes.Buffer
	if strings.HasPrefix(fileType, fileTypeLog) || strings.HasPrefix(fileType, "4 Vendor Log File") {
		now := time.Now().UTC()
		for i := range 20 {
			fmt.Fprintf(&b, "%s %s cwmp[%d]: simulated log line %d\n", now.Add(time.Duration(i-20)*time.Minute).Format(time.RFC3339), d.tree.Serial(), 100+i, i)
		}
		return b.Bytes()
	}
	list, _ := d.tree.GetValues([]string{""})
	for _, p := range list {
		fmt.Fprintf(&b, "%s %s=%s\n", p.Type, p.Name, p.Value)
	}
	return b.Bytes()
}
