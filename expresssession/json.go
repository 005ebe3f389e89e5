package expresssession

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// This file is a small, order-preserving JSON scanner. It finds where values
// are in a document (byte offsets) so that one value can be replaced while
// every other byte – key order, whitespace, unknown keys, number spelling –
// stays as written. It assumes its input has passed json.Valid.

// member is one key/value pair of an object: the decoded key and the byte
// range [start, end) of its value.
type member struct {
	key        string
	keyStart   int // offset of the key's opening quote
	start, end int // the value
}

// object is the members of one JSON object in document order, plus the
// offsets of its braces.
type object struct {
	open, close int // offsets of '{' and '}'
	members     []member
}

// lookup returns the last member named key, as JSON.parse keeps the last of
// duplicate keys.
func (o *object) lookup(key string) (member, bool) {
	for i := len(o.members) - 1; i >= 0; i-- {
		if o.members[i].key == key {
			return o.members[i], true
		}
	}
	return member{}, false
}

var errNotObject = errors.New("not a JSON object")

// skipSpace returns the offset of the first non-whitespace byte at or after i.
func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// valueEnd returns the offset just past the value that starts at i.
func valueEnd(data []byte, i int) int {
	switch data[i] {
	case '"':
		return stringEnd(data, i)
	case '{', '[':
		depth := 0
		for i < len(data) {
			switch data[i] {
			case '"':
				i = stringEnd(data, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default: // number, true, false, null
		for i < len(data) {
			switch data[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

// stringEnd returns the offset just past the string whose opening quote is
// at i.
func stringEnd(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// parseObject returns the members of the object whose value starts at i (at
// or after whitespace), or errNotObject if the value there is not an object.
func parseObject(data []byte, i int) (object, error) {
	i = skipSpace(data, i)
	if i >= len(data) || data[i] != '{' {
		return object{}, errNotObject
	}
	o := object{open: i}
	i = skipSpace(data, i+1)
	if data[i] == '}' {
		o.close = i
		return o, nil
	}
	for {
		keyStart := i
		keyEnd := stringEnd(data, i)
		key, err := decodeString(data[keyStart:keyEnd])
		if err != nil {
			return object{}, err
		}
		i = skipSpace(data, keyEnd)
		i = skipSpace(data, i+1) // past ':'
		end := valueEnd(data, i)
		o.members = append(o.members, member{key: key, keyStart: keyStart, start: i, end: end})
		i = skipSpace(data, end)
		if data[i] == '}' {
			o.close = i
			return o, nil
		}
		i = skipSpace(data, i+1) // past ','
	}
}

// decodeString decodes a JSON string token, quotes included, as
// encoding/json does (invalid UTF-8 becomes U+FFFD).
func decodeString(tok []byte) (string, error) {
	body := tok[1 : len(tok)-1]
	if bytes.IndexByte(body, '\\') < 0 && utf8.Valid(body) {
		return string(body), nil
	}
	var s string
	err := json.Unmarshal(tok, &s)
	return s, err
}

// splice returns data with [start, end) replaced by repl, in a new slice.
func splice(data []byte, start, end int, repl ...[]byte) []byte {
	n := len(data) - (end - start)
	for _, r := range repl {
		n += len(r)
	}
	out := make([]byte, 0, n)
	out = append(out, data[:start]...)
	for _, r := range repl {
		out = append(out, r...)
	}
	return append(out, data[end:]...)
}
