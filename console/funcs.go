package console

import (
	"html/template"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"esc":   url.PathEscape,
	"query": url.QueryEscape,
	"join":  strings.Join,
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.Local().Format("2006-01-02 15:04:05")
	},
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return age(time.Since(t)) + " ago"
	},
	"dur": func(d time.Duration) string {
		if d <= 0 {
			return "none"
		}
		return d.Round(time.Second).String()
	},
	"add": func(a, b int) int { return a + b },
	"size": func(n int64) string {
		switch {
		case n >= 1<<20:
			return strings.TrimSuffix(strings.TrimSuffix(strconvF(float64(n)/(1<<20)), "0"), ".") + " MiB"
		case n >= 1<<10:
			return strings.TrimSuffix(strings.TrimSuffix(strconvF(float64(n)/(1<<10)), "0"), ".") + " KiB"
		}
		return strconvI(n) + " B"
	},
}

func strconvF(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

func strconvI(n int64) string { return strconv.FormatInt(n, 10) }
