package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/edgeacs/edgeacs/client"
	"github.com/edgeacs/edgeacs/fleet"
)

func init() { registerCommand(filesCommand()) }

// resFileTypes are TR-069's file types (Download's FileType), which --type
// also takes by number.
var resFileTypes = map[string]string{
	"1": "1 Firmware Upgrade Image", "2": "2 Web Content", "3": "3 Vendor Configuration File",
	"4": "4 Tone File", "5": "5 Ringer File",
}

func filesCommand() *cli.Command {
	return &cli.Command{
		Name:  "files",
		Usage: "upload, list and delete firmware and configuration files for Download tasks",
		Subcommands: []*cli.Command{
			resCommand("upload", "upload a file to the core, which hands it to every edge", "PATH",
				"The file is streamed to the core, which stores it and sends it on to every edge; a\n"+
					"Download task then names it. An existing file of the same name is replaced. A progress\n"+
					"bar shows on a terminal. --timeout bounds the wait for the core's answer once the file\n"+
					"is sent, not the transfer (Ctrl-C stops that).\n\n"+
					"Examples:\n"+
					"  edgeacs files upload ./fw-2.1.bin --version 2.1\n"+
					"  edgeacs files upload ./acme.cfg --name acme-base.cfg --type 3 --oui 00D09E",
				filesUpload,
				&cli.StringFlag{Name: "name", Usage: "name to store it under (default: PATH's base name)"},
				&cli.StringFlag{Name: "type", Value: resFileTypes["1"], Usage: "TR-069 file type, or its number: 1 firmware, 2 web content, 3 vendor configuration, 4 tone, 5 ringer"},
				&cli.StringFlag{Name: "oui", Usage: "OUI of the devices it is for"},
				&cli.StringFlag{Name: "product-class", Usage: "product class of the devices it is for"},
				&cli.StringFlag{Name: "version", Usage: "software version the file holds"},
			),
			resCommand("list", "list the stored files", "",
				"Examples:\n  edgeacs files list\n  edgeacs files list --json", filesList),
			resCommand("show", "show one file's metadata", "NAME",
				"Examples:\n  edgeacs files show fw-2.1.bin", filesShow),
			resCommand("delete", "delete a file from the core and every edge", "NAME",
				"Examples:\n  edgeacs files delete fw-2.0.bin", filesDelete),
		},
	}
}

func filesUpload(c *cli.Context, cl *client.Client) error {
	path, err := resOneArg(c, "file PATH")
	if err != nil {
		return err
	}
	name := c.String("name")
	if name == "" {
		name = filepath.Base(path)
	}
	if !fleet.ValidFileName(name) {
		return usageErr(c, "%q is not a file name (1-255 bytes; no '/', '\\', control characters, '.' or '..'); give one with --name", name)
	}
	ftype := strings.TrimSpace(c.String("type"))
	if full, ok := resFileTypes[ftype]; ok {
		ftype = full
	}
	if ftype == "" {
		return usageErr(c, "--type is empty; give a TR-069 file type such as %q", resFileTypes["1"])
	}
	f, err := os.Open(path)
	if err != nil {
		return usageErr(c, "%v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return apiFail(c, err)
	}
	if !st.Mode().IsRegular() {
		return usageErr(c, "%s is not a regular file", path)
	}
	up := client.FileUpload{Name: name, FileType: ftype, OUI: c.String("oui"), ProductClass: c.String("product-class"),
		Version: c.String("version"), Size: st.Size()}
	var bar *progressbar.ProgressBar
	if w := c.App.ErrWriter; w != nil && resProgressTTY(w) && !c.Bool("json") {
		bar = progressbar.NewOptions64(st.Size(),
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("uploading "+name),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetRenderBlankState(true),
			progressbar.OptionClearOnFinish(),
		)
		up.Progress = func(n int64) { _ = bar.Set64(n) }
	}
	m, err := cl.UploadFile(c.Context, f, up)
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return apiFail(c, err)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, m)
	}
	fmt.Fprintf(c.App.Writer, "uploaded %s (%s, %s, sha256 %s)\n", m.Name, resBytes(m.Size), m.FileType, m.SHA256)
	return nil
}

func filesList(c *cli.Context, cl *client.Client) error {
	if err := resNoArg(c); err != nil {
		return err
	}
	fs, err := cl.Files(c.Context)
	if err != nil {
		return apiFail(c, err)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, fs)
	}
	if len(fs) == 0 {
		fmt.Fprintln(c.App.Writer, "no files; upload one with 'edgeacs files upload PATH'")
		return nil
	}
	tw := newTable(c.App.Writer)
	fmt.Fprintln(tw, "NAME\tTYPE\tVERSION\tFOR\tSIZE\tUPLOADED\tSHA256")
	for _, f := range fs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Name, f.FileType, orDash(f.Version), orDash(resFileFor(f)),
			resBytes(f.Size), f.Uploaded.Local().Format(time.DateTime), resShortHash(f.SHA256))
	}
	return tw.Flush()
}

// resFileFor is which devices a file is for: OUI and product class, as set.
func resFileFor(f client.FileMeta) string {
	return strings.Trim(f.OUI+"/"+f.ProductClass, "/")
}

// resShortHash is enough of a SHA-256 to tell files apart in a table.
func resShortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func filesShow(c *cli.Context, cl *client.Client) error {
	name, err := resOneArg(c, "file NAME")
	if err != nil {
		return err
	}
	f, err := cl.File(c.Context, name)
	if err != nil {
		return apiFail(c, err)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, f)
	}
	tw := newTable(c.App.Writer)
	for _, kv := range [][2]string{
		{"name", f.Name}, {"type", f.FileType}, {"version", orDash(f.Version)}, {"oui", orDash(f.OUI)},
		{"product class", orDash(f.ProductClass)}, {"size", fmt.Sprintf("%s (%d bytes)", resBytes(f.Size), f.Size)},
		{"sha256", f.SHA256}, {"uploaded", f.Uploaded.Format(time.RFC3339)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
	}
	return tw.Flush()
}

func filesDelete(c *cli.Context, cl *client.Client) error {
	name, err := resOneArg(c, "file NAME")
	if err != nil {
		return err
	}
	if err := cl.DeleteFile(c.Context, name); err != nil {
		return apiFail(c, err)
	}
	return resDone(c, map[string]string{"deleted": name}, "deleted file %s", name)
}

// resDone prints a change's outcome: v as JSON with --json, else the
// sentence.
func resDone(c *cli.Context, v any, format string, a ...any) error {
	if c.Bool("json") {
		return printJSON(c.App.Writer, v)
	}
	_, err := fmt.Fprintf(c.App.Writer, format+"\n", a...)
	return err
}
