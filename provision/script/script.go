package script

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dop251/goja"
	"github.com/dop251/goja/parser"
)

// MaxSource bounds a script's source: what the API accepts at PUT time.
const MaxSource = 256 << 10

// Sentinel errors callers branch on.
var (
	// ErrCompile means a script does not compile; the error is a
	// *CompileError that says where. The API answers 400.
	ErrCompile = errors.New("script: does not compile")
	// ErrTooLarge means a script is longer than MaxSource.
	ErrTooLarge = errors.New("script: source too large")
	// ErrEnv means an Env lacks what a run needs (a collector, a tree).
	ErrEnv = errors.New("script: incomplete environment")
)

// Fault codes of a script's run, besides GenieACS's "script.<ErrorName>"
// for an uncaught error and "script" for a thrown non-Error.
const (
	// FaultTimeout: the run used up Limits.Time.
	FaultTimeout = "timeout"
	// FaultLimit: the run hit another bound of Limits (declarations,
	// allocation); the message says which.
	FaultLimit = "limit"
	// FaultScript is GenieACS's code for a thrown value that is not an
	// Error, and for a virtual parameter's bad return value.
	FaultScript = "script"
)

// CompileError is a syntax error with its place in the script, lines and
// columns counted from 1 as an editor shows them.
type CompileError struct {
	Name         string
	Line, Column int
	Message      string
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.Name, e.Line, e.Column, e.Message)
}

// Unwrap makes errors.Is(err, ErrCompile) hold.
func (e *CompileError) Unwrap() error { return ErrCompile }

// The script body runs inside a strict-mode function, as GenieACS wraps it
// (a virtual parameter returns its value with a top-level return): the
// program evaluates to the function, and a run calls it. The prefix
// shares the first line with the script so that line numbers need no
// shifting; only columns on line 1 do.
const (
	wrapPrefix = `"use strict";(function(){`
	wrapSuffix = "\n})"
)

// Script is a compiled provision or virtual parameter script. It is
// immutable and safe for concurrent use: each run gets its own runtime.
type Script struct {
	name  string
	prog  *goja.Program
	lines int // lines of the source: frames beyond are the wrapper's
}

// Compile checks and compiles a script once, for any number of runs.
// Errors wrap ErrTooLarge, or ErrCompile as a *CompileError giving the
// line and column.
func Compile(name, source string) (*Script, error) {
	if len(source) > MaxSource {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrTooLarge, len(source), MaxSource)
	}
	if !utf8.ValidString(source) {
		return nil, &CompileError{Name: name, Line: 1, Column: 1, Message: "source is not UTF-8"}
	}
	wrapped := wrapPrefix + source + wrapSuffix
	// Source maps off: goja would otherwise read the file a
	// "//# sourceMappingURL=" comment names from the local disk.
	ast, err := parser.ParseFile(nil, name, wrapped, 0, parser.WithDisableSourceMaps)
	if err != nil {
		var list parser.ErrorList
		var one *parser.Error
		switch {
		case errors.As(err, &list) && len(list) > 0:
			one = list[0]
		case errors.As(err, &one):
		default:
			return nil, &CompileError{Name: name, Line: 1, Column: 1, Message: err.Error()}
		}
		line, col := sourcePos(source, one.Position.Line, one.Position.Column)
		return nil, &CompileError{Name: name, Line: line, Column: col, Message: one.Message}
	}
	prog, err := goja.CompileAST(ast, false)
	if err != nil {
		ce := &CompileError{Name: name, Line: 1, Column: 1, Message: err.Error()}
		var se *goja.CompilerSyntaxError
		if errors.As(err, &se) {
			ce.Message = se.Message
			if se.File != nil {
				p := se.File.Position(se.Offset)
				ce.Line, ce.Column = sourcePos(source, p.Line, p.Column)
			}
		}
		return nil, ce
	}
	return &Script{name: name, prog: prog, lines: strings.Count(source, "\n") + 1}, nil
}

// Name is the script's name, as given to Compile.
func (s *Script) Name() string { return s.name }

// sourcePos maps a position in the wrapped source to the script's; an
// error in the wrapper's closing line (an unclosed brace) is placed at
// the end of the script.
func sourcePos(source string, line, col int) (int, int) {
	lines := strings.Split(source, "\n")
	if line > len(lines) {
		last := lines[len(lines)-1]
		line, col = len(lines), utf8.RuneCountInString(last)+1
		if line == 1 {
			col += len(wrapPrefix)
		}
	}
	return unwrapPos(line, col)
}

// unwrapPos maps a position in the wrapped source to the script's.
func unwrapPos(line, col int) (int, int) {
	if line == 1 {
		col -= len(wrapPrefix)
		if col < 1 {
			col = 1
		}
	}
	return line, col
}

// Limits bound one run of a script. Zero fields take the defaults.
type Limits struct {
	// Time is the wall-clock time one run may take (default 50 ms, as
	// GenieACS's vm timeout; at most 1 s). Past it the run stops with
	// FaultTimeout.
	Time time.Duration
	// Alloc bounds the bytes allocated during one run (default 64 MiB;
	// negative: no bound). Go cannot count a goroutine's allocations, so
	// this is the process's allocation counter, sampled every
	// millisecond: allocations by the rest of the process during the
	// run count too, which is why the default is generous.
	Alloc int64
	// Declarations bounds the declare() and clear() calls of one run
	// (default 1024).
	Declarations int
	// LogBytes bounds what log() keeps of one run (default 16 KiB); the
	// rest is cut.
	LogBytes int
	// Value bounds a declared value (default 64 KiB).
	Value int
	// String bounds the strings the built-ins repeat, padStart, padEnd,
	// join and replace build in one call (default 4 Mi characters), and
	// Array the array-likes built-ins walk in one call (default 1 Mi
	// elements): one call of a built-in cannot be interrupted.
	String, Array int
	// Stack bounds the call depth (default 512).
	Stack int
	// Replays bounds the runs of a script in one session after its first
	// (default 8); beyond, Exec faults the channel too_many_commits.
	Replays int
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if l.Time <= 0 {
		l.Time = 50 * time.Millisecond
	}
	l.Time = min(l.Time, maxTime)
	if l.Alloc == 0 {
		l.Alloc = 64 << 20
	}
	def(&l.Declarations, 1024)
	def(&l.LogBytes, 16<<10)
	def(&l.Value, 64<<10)
	def(&l.String, 4<<20)
	def(&l.Array, 1<<20)
	def(&l.Stack, 512)
	def(&l.Replays, 8)
	return l
}
