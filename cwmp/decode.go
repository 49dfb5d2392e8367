package cwmp

// decode is implemented by the codec work (issue #3).
func (d Decoder) decode(data []byte) (*Envelope, error) { return nil, ErrMalformed }
