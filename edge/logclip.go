package edge

import (
	"context"
	"log/slog"
	"strconv"
)

// maxLogValue bounds one logged string (message, attribute value, error
// text). Log lines carry IDs, paths and errors that may quote what a CPE
// or a client sent; however large the request, a line stays small (a 4 MB
// identifier once became 8 MB of hex dump in one error line).
const maxLogValue = 1024

// clipHandler is a slog.Handler that truncates long strings before
// passing records on. The node wraps every logger it is given in one, so
// nothing the edge logs can carry a payload whole.
type clipHandler struct{ h slog.Handler }

func clipLogger(l *slog.Logger) *slog.Logger {
	if _, ok := l.Handler().(clipHandler); ok {
		return l
	}
	return slog.New(clipHandler{l.Handler()})
}

// Enabled implements slog.Handler.
func (c clipHandler) Enabled(ctx context.Context, l slog.Level) bool { return c.h.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (c clipHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, clipString(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(clipAttr(a))
		return true
	})
	return c.h.Handle(ctx, out)
}

// WithAttrs implements slog.Handler.
func (c clipHandler) WithAttrs(as []slog.Attr) slog.Handler {
	clipped := make([]slog.Attr, len(as))
	for i, a := range as {
		clipped[i] = clipAttr(a)
	}
	return clipHandler{c.h.WithAttrs(clipped)}
}

// WithGroup implements slog.Handler.
func (c clipHandler) WithGroup(name string) slog.Handler { return clipHandler{c.h.WithGroup(name)} }

func clipAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if s := v.String(); len(s) > maxLogValue {
			return slog.String(a.Key, clipString(s))
		}
	case slog.KindGroup:
		g := v.Group()
		clipped := make([]any, len(g))
		for i, ga := range g {
			clipped[i] = clipAttr(ga)
		}
		return slog.Group(a.Key, clipped...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			if s := x.Error(); len(s) > maxLogValue {
				return slog.String(a.Key, clipString(s))
			}
		case []byte:
			if len(x) > maxLogValue {
				return slog.String(a.Key, clipString(string(x)))
			}
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func clipString(s string) string {
	if len(s) <= maxLogValue {
		return s
	}
	return s[:maxLogValue] + "…[" + strconv.Itoa(len(s)-maxLogValue) + " more bytes]"
}
