package bench

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
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

// SizeMix as a message size asks for the mail-like size mix of MixSize.
const SizeMix = -1

// messageSize is the size of message id under a size setting: size itself
// when positive, MixSize(id) for SizeMix.
func messageSize(id string, size int) int {
	if size == SizeMix {
		return MixSize(id)
	}
	return size
}

// MixSize draws a mail-like message size from id deterministically: 90% of
// messages log-normal around 2 KiB (plain text mail), 10% log-normal around
// 64 KiB (attachments), clamped to [300 B, 1 MiB]. The median is about
// 2.3 KiB, the mean about 16 KiB.
func MixSize(id string) int {
	h := fnv.New64a()
	h.Write([]byte(id))
	x := h.Sum64()
	u := func() float64 { // uniform in (0, 1)
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		return (float64(x>>11) + 0.5) / (1 << 53)
	}
	// Box-Muller: a standard normal deviate.
	z := math.Sqrt(-2*math.Log(u())) * math.Cos(2*math.Pi*u())
	median, sigma := 2048.0, 0.8
	if u() < 0.10 {
		median, sigma = 64<<10, 1.2
	}
	s := median * math.Exp(sigma*z)
	return int(min(max(s, 300), 1<<20))
}
