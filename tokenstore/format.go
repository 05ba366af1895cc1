package tokenstore

import (
	"encoding/json"
	"math"
)

// CheckStoredFormat is CheckFormat for the "format" member of a stored record as it comes
// out of a JSON decoder: v is nil when the record names no format (it is read as the first
// one), a json.Number (the Vault client decodes numbers so), a float64 or an int. A format
// that is not a whole number (a string, a fraction, a number out of range) is refused like a
// newer one, as format -1: nothing is read from such a record and nothing written over it.
func CheckStoredFormat(what string, v any, newest int) error {
	var f float64
	switch n := v.(type) {
	case nil:
		return nil
	case int:
		return CheckFormat(what, n, newest)
	case json.Number:
		i, err := n.Int64()
		if err != nil {
			return &FormatError{What: what, Format: -1, Newest: newest}
		}
		f = float64(i)
	case float64:
		f = n
	default:
		return &FormatError{What: what, Format: -1, Newest: newest}
	}
	if f != math.Trunc(f) || f < math.MinInt32 || f > math.MaxInt32 {
		return &FormatError{What: what, Format: -1, Newest: newest}
	}
	return CheckFormat(what, int(f), newest)
}
