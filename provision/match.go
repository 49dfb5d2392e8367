package provision

// Match returns the nodes of the cached tree t that path matches, without
// asking for anything: what a script's declare() reads back. Alias terms
// compare with the cached values; a node whose key is not cached does
// not match.
func Match(t Tree, path string) ([]Entry, error) {
	p, err := ParsePath(path)
	if err != nil {
		return nil, err
	}
	root, _ := t.Get("")
	root.Path, root.Object = "", true
	frontier := []Entry{root}
	for i, seg := range p.Segments {
		last := i == len(p.Segments)-1
		wantObj := !last || p.Object
		var next []Entry
		for _, obj := range frontier {
			if !obj.Object {
				continue
			}
			if seg.Kind == Literal {
				name := obj.Path + seg.Name
				if !wantObj {
					if e, ok := t.Get(name); ok {
						next = append(next, e)
						continue
					}
				}
				if e, ok := t.Get(name + "."); ok {
					next = append(next, e)
				}
				continue
			}
			t.Children(obj.Path, func(c Entry) bool {
				if (wantObj || seg.Kind == Alias) && !c.Object {
					return true
				}
				if seg.Kind == Alias && !cachedMatch(t, c, seg.Terms) {
					return true
				}
				next = append(next, c)
				return true
			})
		}
		frontier = next
	}
	return frontier, nil
}

func cachedMatch(t Tree, c Entry, terms []AliasTerm) bool {
	for _, term := range terms {
		e, ok := t.Get(c.Path + term.Key)
		if !ok || e.Object || !sameValue(e.Type, e.Value, term.Value) {
			return false
		}
	}
	return true
}
