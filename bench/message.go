package bench

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
)

// benchHeader is the header line that carries a message's delivery ID.
const benchHeader = "X-Bench-ID: "

// MessageBody returns the deterministic body of the message with delivery ID
// id and exactly size bytes (at least the header's length): an RFC 5322-ish
// header naming id, then filler derived from id, so that the verifier can
// regenerate and compare every delivered byte.
func MessageBody(id string, size int) []byte {
	var b bytes.Buffer
	b.Grow(size + 128)
	fmt.Fprintf(&b, "Return-Path: <bench@mailnfs.invalid>\nMessage-ID: <%s@mailnfs.invalid>\n%s%s\nSubject: mailnfs bench\n\n", id, benchHeader, id)
	h := fnv.New64a()
	h.Write([]byte(id))
	x := h.Sum64() | 1
	line := make([]byte, 0, 77)
	for b.Len() < size {
		line = line[:0]
		for range 76 {
			// xorshift64: cheap, deterministic filler.
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			line = append(line, 'a'+byte(x%26))
		}
		line = append(line, '\n')
		b.Write(line)
	}
	b.Truncate(max(size, len(headerOnly(b.Bytes()))))
	return b.Bytes()
}

// headerOnly returns the header part (through the blank line) of a body.
func headerOnly(body []byte) []byte {
	if i := bytes.Index(body, []byte("\n\n")); i >= 0 {
		return body[:i+2]
	}
	return body
}

// errNoBenchID is returned for a file that carries no X-Bench-ID header.
var errNoBenchID = errors.New("bench: message has no " + benchHeader + "header")

// MessageID extracts the delivery ID from a message body.
func MessageID(body []byte) (string, error) {
	hdr := headerOnly(body)
	i := bytes.Index(hdr, []byte("\n"+benchHeader))
	if i < 0 {
		return "", errNoBenchID
	}
	rest := hdr[i+1+len(benchHeader):]
	j := bytes.IndexByte(rest, '\n')
	if j <= 0 {
		return "", errNoBenchID
	}
	return string(rest[:j]), nil
}
