package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/edgeacs/edgeacs/client"
)

// errReadOnly answers a read token's visit to a page that only makes
// something.
var errReadOnly = fmt.Errorf("%w: your token can look but not change anything", client.ErrForbidden)

// ---- presets ----

type presetsData struct {
	Presets []client.Preset
}

func (c *Console) presets(w http.ResponseWriter, q *req) error {
	ps, err := q.api.Presets(q.ctx)
	if err != nil {
		return err
	}
	return c.render(w, q, http.StatusOK, "presets", "Presets", "presets", presetsData{Presets: ps})
}

// editData is a preset's or a provision's edit form, with the error the
// API found and where.
type editData struct {
	Kind   string // "preset" or "provision"
	Name   string
	New    bool
	Text   string
	Error  string
	Where  string
	Lines  []srcLine
	Action string
}

// srcLine is one numbered line of the source under an error.
type srcLine struct {
	N    int
	Text string
	Bad  bool
}

// newPresetText is what a new preset's form starts with.
const newPresetText = `{
  "weight": 0,
  "channel": "default",
  "events": {"0 BOOTSTRAP": true},
  "precondition": "DeviceID.ProductClass = 'example'",
  "provisions": [["refresh", "InternetGatewayDevice.DeviceInfo."]]
}`

func (c *Console) presetEdit(w http.ResponseWriter, q *req) error {
	name := q.PathValue("name")
	d := editData{Kind: "preset", Name: name, Action: Prefix + "presets/" + url.PathEscape(name)}
	if name == "new" && !q.canWrite() {
		return errReadOnly
	}
	if name == "new" {
		d.New, d.Name, d.Text, d.Action = true, "", newPresetText, Prefix+"presets/new"
	} else {
		p, err := q.api.Preset(q.ctx, name)
		if err != nil {
			return err
		}
		p.Name = ""
		b, err := json.MarshalIndent(p, "", "  ")
		if err != nil {
			return fmt.Errorf("show preset %s: %w", name, err)
		}
		d.Text = string(b)
	}
	return c.render(w, q, http.StatusOK, "edit", "Preset "+d.Name, "presets", d)
}

func (c *Console) presetSave(w http.ResponseWriter, q *req) error {
	name := q.PathValue("name")
	d := editData{Kind: "preset", Name: name, Text: q.PostFormValue("text"), Action: Prefix + "presets/" + url.PathEscape(name)}
	if name == "new" {
		d.New, d.Name, d.Action = true, strings.TrimSpace(q.PostFormValue("name")), Prefix+"presets/new"
		if d.Name == "" {
			d.Error = "Give the preset a name."
			return c.render(w, q, http.StatusBadRequest, "edit", "New preset", "presets", d)
		}
	}
	if err := checkJSON(d.Text); err != nil {
		d.Error = err.msg
		d.Where = fmt.Sprintf("line %d, column %d", err.line, err.col)
		d.Lines = listing(d.Text, err.line)
		return c.render(w, q, http.StatusBadRequest, "edit", "Preset "+d.Name, "presets", d)
	}
	err := q.api.Do(q.ctx, http.MethodPut, "/api/v1/presets/"+url.PathEscape(d.Name), json.RawMessage(d.Text), nil)
	var ae *client.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
		d.Error = ae.Message
		bad := 0
		if ae.Field != "" {
			bad = fieldLine(d.Text, ae.Field)
			d.Where = "field " + ae.Field
			if ae.Line > 0 {
				d.Where += fmt.Sprintf(", line %d, column %d of its text", ae.Line, ae.Column)
			}
		}
		d.Lines = listing(d.Text, bad)
		return c.render(w, q, http.StatusBadRequest, "edit", "Preset "+d.Name, "presets", d)
	}
	if err != nil {
		return err
	}
	redirect(w, q.Request, Prefix+"presets", "Saved preset "+d.Name+".")
	return nil
}

func (c *Console) presetDelete(w http.ResponseWriter, q *req) error {
	name := q.PathValue("name")
	if err := q.api.DeletePreset(q.ctx, name); err != nil {
		return err
	}
	redirect(w, q.Request, Prefix+"presets", "Deleted preset "+name+".")
	return nil
}

// jsonError is a JSON syntax error with its line and column (from 1).
type jsonError struct {
	msg       string
	line, col int
}

// checkJSON reports where text stops being one JSON object.
func checkJSON(text string) *jsonError {
	dec := json.NewDecoder(strings.NewReader(text))
	var v map[string]any
	err := dec.Decode(&v)
	if err == nil {
		if _, err2 := dec.Token(); err2 == io.EOF {
			return nil
		}
		off := dec.InputOffset()
		l, c := lineCol(text, int(off))
		return &jsonError{msg: "There is more after the preset's closing brace.", line: l, col: c}
	}
	off := len(text)
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = int(se.Offset)
	case errors.As(err, &te):
		off = int(te.Offset)
	}
	l, c := lineCol(text, off)
	return &jsonError{msg: "This is not valid JSON: " + err.Error(), line: l, col: c}
}

// lineCol turns a byte offset into a line and column, from 1.
func lineCol(text string, off int) (int, int) {
	off = min(max(off, 0), len(text))
	before := text[:off]
	line := strings.Count(before, "\n") + 1
	col := off - strings.LastIndexByte(before, '\n')
	return line, col
}

// fieldLine is the line of text where "field" (its last dotted part) is
// named, 0 if nowhere.
func fieldLine(text, field string) int {
	if i := strings.LastIndexByte(field, '.'); i >= 0 {
		field = field[i+1:]
	}
	if i := strings.IndexByte(field, '['); i >= 0 {
		field = field[:i]
	}
	i := strings.Index(text, `"`+field+`"`)
	if i < 0 {
		return 0
	}
	l, _ := lineCol(text, i)
	return l
}

// listing numbers text's lines, marking line bad.
func listing(text string, bad int) []srcLine {
	var out []srcLine
	for i, l := range strings.Split(text, "\n") {
		out = append(out, srcLine{N: i + 1, Text: l, Bad: i+1 == bad})
	}
	return out
}

// ---- provisions ----

type provisionsData struct {
	Provisions []client.Provision
}

func (c *Console) provisions(w http.ResponseWriter, q *req) error {
	ps, err := q.api.Provisions(q.ctx)
	if err != nil {
		return err
	}
	return c.render(w, q, http.StatusOK, "provisions", "Provisions", "provisions", provisionsData{Provisions: ps})
}

func (c *Console) provisionEdit(w http.ResponseWriter, q *req) error {
	name := q.PathValue("name")
	d := editData{Kind: "provision", Name: name, Action: Prefix + "provisions/" + url.PathEscape(name)}
	if name == "new" && !q.canWrite() {
		return errReadOnly
	}
	if name == "new" {
		d.New, d.Name, d.Action = true, "", Prefix+"provisions/new"
		d.Text = "// A provision script, run by the edges in CWMP sessions.\nconst now = Date.now();\ndeclare(\"InternetGatewayDevice.DeviceInfo.SoftwareVersion\", {value: now});\n"
	} else {
		p, err := q.api.Provision(q.ctx, name)
		if err != nil {
			return err
		}
		d.Text = p.Script
	}
	return c.render(w, q, http.StatusOK, "edit", "Provision "+d.Name, "provisions", d)
}

func (c *Console) provisionSave(w http.ResponseWriter, q *req) error {
	name := q.PathValue("name")
	d := editData{Kind: "provision", Name: name, Text: q.PostFormValue("text"), Action: Prefix + "provisions/" + url.PathEscape(name)}
	if name == "new" {
		d.New, d.Name, d.Action = true, strings.TrimSpace(q.PostFormValue("name")), Prefix+"provisions/new"
		if d.Name == "" {
			d.Error = "Give the provision a name."
			return c.render(w, q, http.StatusBadRequest, "edit", "New provision", "provisions", d)
		}
	}
	// Browsers send a textarea's line breaks as CRLF.
	d.Text = strings.ReplaceAll(d.Text, "\r\n", "\n")
	_, err := q.api.PutProvision(q.ctx, d.Name, d.Text)
	var ae *client.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
		d.Error = ae.Message
		if ae.Line > 0 {
			d.Where = fmt.Sprintf("line %d, column %d", ae.Line, ae.Column)
		}
		d.Lines = listing(d.Text, ae.Line)
		return c.render(w, q, http.StatusBadRequest, "edit", "Provision "+d.Name, "provisions", d)
	}
	if err != nil {
		return err
	}
	redirect(w, q.Request, Prefix+"provisions", "Saved provision "+d.Name+".")
	return nil
}

func (c *Console) provisionDelete(w http.ResponseWriter, q *req) error {
	name := q.PathValue("name")
	if err := q.api.DeleteProvision(q.ctx, name); err != nil {
		return err
	}
	redirect(w, q.Request, Prefix+"provisions", "Deleted provision "+name+".")
	return nil
}

// ---- files ----

type filesData struct {
	Files []client.FileMeta
}

func (c *Console) files(w http.ResponseWriter, q *req) error {
	fs, err := q.api.Files(q.ctx)
	if err != nil {
		return err
	}
	return c.render(w, q, http.StatusOK, "files", "Files", "files", filesData{Files: fs})
}

// fileUpload streams a multipart form's file to the API: the fields
// (after csrf) come first, the file last, and the file is never held
// whole in memory or on disk here.
func (c *Console) fileUpload(w http.ResponseWriter, q *req) error {
	if q.parts == nil {
		return fmt.Errorf("%w: an upload is a multipart form", client.ErrBadRequest)
	}
	var u client.FileUpload
	u.Size = -1
	for {
		p, err := q.parts.NextPart()
		if err == io.EOF {
			return fmt.Errorf("%w: the form has no file", client.ErrBadRequest)
		}
		if err != nil {
			return fmt.Errorf("%w: read the upload: %v", client.ErrBadRequest, err)
		}
		if p.FormName() == "file" {
			if u.Name == "" {
				u.Name = p.FileName()
			}
			if u.FileType == "" {
				u.FileType = "1 Firmware Upgrade Image"
			}
			if u.Name == "" {
				return fmt.Errorf("%w: choose a file", client.ErrBadRequest)
			}
			if _, err := q.api.UploadFile(q.ctx, p, u); err != nil {
				return err
			}
			break
		}
		var b bytes.Buffer
		if _, err := io.Copy(&b, io.LimitReader(p, 1024)); err != nil {
			return fmt.Errorf("%w: read the upload: %v", client.ErrBadRequest, err)
		}
		v := strings.TrimSpace(b.String())
		switch p.FormName() {
		case "name":
			u.Name = v
		case "fileType":
			u.FileType = v
		case "oui":
			u.OUI = v
		case "productClass":
			u.ProductClass = v
		case "version":
			u.Version = v
		}
	}
	redirect(w, q.Request, Prefix+"files", "Uploaded "+u.Name+".")
	return nil
}

func (c *Console) fileDelete(w http.ResponseWriter, q *req) error {
	name := q.PathValue("name")
	if err := q.api.DeleteFile(q.ctx, name); err != nil {
		return err
	}
	redirect(w, q.Request, Prefix+"files", "Deleted file "+name+".")
	return nil
}
