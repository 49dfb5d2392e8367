package cwmp

// encode is implemented by the codec work (issue #3).
func encode(env *Envelope) ([]byte, error) { return nil, ErrMalformed }
