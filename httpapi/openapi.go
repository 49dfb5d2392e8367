package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Spec is an API's hand-kept OpenAPI 3 description, read for what the
// server enforces with it: the operations (method and path) and the query
// parameters each accepts. Keeping the document the one list of query
// parameters means it cannot drift from what the server takes: a
// parameter it does not name is refused (Strict).
type Spec struct {
	doc []byte
	// query maps "METHOD /path/{wildcard}" to its query parameters.
	query map[string][]string
}

// specMethods are the operation keys of an OpenAPI path item.
var specMethods = []string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}

type specParam struct {
	Ref  string `json:"$ref"`
	Name string `json:"name"`
	In   string `json:"in"`
}

// LoadSpec reads an OpenAPI 3 document. It checks what the server relies
// on: every operation's path wildcards are declared path parameters, and
// every parameter reference resolves.
func LoadSpec(doc []byte) (*Spec, error) {
	var d struct {
		OpenAPI    string                                `json:"openapi"`
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Parameters map[string]specParam `json:"parameters"`
		} `json:"components"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	if !strings.HasPrefix(d.OpenAPI, "3.") {
		return nil, fmt.Errorf("openapi: version %q, want 3.x", d.OpenAPI)
	}
	resolve := func(ps []specParam) ([]specParam, error) {
		out := make([]specParam, 0, len(ps))
		for _, p := range ps {
			if p.Ref != "" {
				name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/")
				ref, found := d.Components.Parameters[name]
				if !ok || !found {
					return nil, fmt.Errorf("unresolved parameter %s", p.Ref)
				}
				p = ref
			}
			out = append(out, p)
		}
		return out, nil
	}
	s := &Spec{doc: doc, query: map[string][]string{}}
	for path, item := range d.Paths {
		var shared []specParam
		if raw, ok := item["parameters"]; ok {
			if err := json.Unmarshal(raw, &shared); err != nil {
				return nil, fmt.Errorf("openapi: %s parameters: %w", path, err)
			}
		}
		for _, m := range specMethods {
			raw, ok := item[m]
			if !ok {
				continue
			}
			op := strings.ToUpper(m) + " " + path
			var o struct {
				Parameters []specParam `json:"parameters"`
			}
			if err := json.Unmarshal(raw, &o); err != nil {
				return nil, fmt.Errorf("openapi: %s: %w", op, err)
			}
			ps, err := resolve(append(slices.Clone(shared), o.Parameters...))
			if err != nil {
				return nil, fmt.Errorf("openapi: %s: %w", op, err)
			}
			query := []string{}
			inPath := map[string]bool{}
			for _, p := range ps {
				switch p.In {
				case "query":
					query = append(query, p.Name)
				case "path":
					inPath[p.Name] = true
				}
			}
			for _, seg := range strings.Split(path, "/") {
				if w, ok := strings.CutPrefix(seg, "{"); ok && !inPath[strings.TrimSuffix(w, "}")] {
					return nil, fmt.Errorf("openapi: %s: path parameter %s is not declared", op, seg)
				}
			}
			s.query[op] = query
		}
	}
	return s, nil
}

// Operations lists the document's operations as "METHOD /path", the form
// of a ServeMux pattern, sorted.
func (s *Spec) Operations() []string {
	out := make([]string, 0, len(s.query))
	for op := range s.query {
		out = append(out, op)
	}
	slices.Sort(out)
	return out
}

// Query returns the query parameters operation op ("GET /api/v1/tasks")
// accepts, and whether the document has op.
func (s *Spec) Query(op string) ([]string, bool) {
	q, ok := s.query[op]
	return q, ok
}

// Strict wraps the handler of the route pattern so that a query parameter
// the document does not list for it is refused with 400 (CheckQuery). A
// pattern the document does not have is served as is: only documented
// routes are held to their document (and a test holds every /api/v1 route
// to being documented, see Compare).
func (s *Spec) Strict(pattern string, h http.HandlerFunc) http.HandlerFunc {
	known, ok := s.query[pattern]
	if !ok {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery != "" {
			if err := CheckQuery(r.URL.Query(), known); err != nil {
				WriteError(w, fmt.Errorf("%s %s: %w", r.Method, r.URL.Path, err))
				return
			}
		}
		h(w, r)
	}
}

// ServeHTTP answers with the document itself.
func (s *Spec) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(s.doc)
}

// Compare matches a mux's registered patterns against the document:
// missing are the patterns under prefix ("/api/v1/") the document lacks,
// extra the document's operations no pattern registers. A pattern without
// a method serves every method and must not appear under prefix.
func (s *Spec) Compare(patterns []string, prefix string) (missing, extra []string) {
	registered := map[string]bool{}
	for _, p := range patterns {
		method, path, ok := strings.Cut(p, " ")
		if !ok {
			method, path = "", p
		}
		if !strings.HasPrefix(path, prefix) {
			continue
		}
		registered[p] = true
		if _, ok := s.query[p]; !ok || method == "" {
			missing = append(missing, p)
		}
	}
	for op := range s.query {
		if !registered[op] {
			extra = append(extra, op)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	return missing, extra
}
