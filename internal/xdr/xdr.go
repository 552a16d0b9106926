// Package xdr encodes and decodes XDR (RFC 4506) for the RPC programs that
// mailnfs speaks: big-endian, 4-byte aligned, with explicit bounds on every
// variable-length item.
//
// The Decoder works over a byte slice that already holds a whole RPC record,
// so it never allocates what a peer merely claims: a length is checked against
// both its protocol maximum and the bytes actually present before anything is
// sliced. Errors are sticky: after the first failure every further call
// returns a zero value, and Err reports the first failure. Padding must be
// zero, as buildbarn's go-xdr insists, so a sloppy or hostile peer is caught.
//
// The Encoder appends to a growing slice; callers reuse it with Reset.
package xdr

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrShort means the input ended inside an item.
var ErrShort = errors.New("xdr: input too short")

// ErrTooLong means a length field exceeded the item's protocol maximum.
var ErrTooLong = errors.New("xdr: length exceeds maximum")

// ErrPadding means the padding after an opaque item was not zero.
var ErrPadding = errors.New("xdr: non-zero padding")

// ErrBool means a boolean was neither 0 nor 1.
var ErrBool = errors.New("xdr: boolean is neither 0 nor 1")

// ErrTrailing means bytes were left after the last item of a message.
var ErrTrailing = errors.New("xdr: trailing bytes")

// Pad returns the number of zero bytes that follow n bytes of opaque data.
func Pad(n int) int { return (4 - n&3) & 3 }

// Decoder reads XDR items from a byte slice. The zero Decoder is empty.
type Decoder struct {
	buf []byte
	off int
	err error
}

// NewDecoder returns a Decoder over b. Slices returned by Opaque and
// FixedOpaque alias b.
func NewDecoder(b []byte) *Decoder { return &Decoder{buf: b} }

// Reset makes d read b from the start and clears its error.
func (d *Decoder) Reset(b []byte) { *d = Decoder{buf: b} }

// Err returns the first error met, or nil.
func (d *Decoder) Err() error { return d.err }

// Fail records err as the decoder's error if none is recorded yet. Callers use
// it for semantic checks (an enum out of range) so one error path serves all.
func (d *Decoder) Fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

// Remaining returns the number of unread bytes.
func (d *Decoder) Remaining() int { return len(d.buf) - d.off }

// Rest returns the unread bytes without consuming them.
func (d *Decoder) Rest() []byte { return d.buf[d.off:] }

// Offset returns how many bytes have been consumed.
func (d *Decoder) Offset() int { return d.off }

// Done reports an error if the decoder failed or input is left over.
func (d *Decoder) Done() error {
	if d.err != nil {
		return d.err
	}
	if d.off != len(d.buf) {
		return fmt.Errorf("%w: %d", ErrTrailing, len(d.buf)-d.off)
	}
	return nil
}

func (d *Decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.buf)-d.off < n {
		d.err = ErrShort
		return nil
	}
	b := d.buf[d.off : d.off+n : d.off+n]
	d.off += n
	return b
}

// Uint32 reads an unsigned int.
func (d *Decoder) Uint32() uint32 {
	b := d.take(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

// Int32 reads a signed int.
func (d *Decoder) Int32() int32 { return int32(d.Uint32()) }

// Uint64 reads an unsigned hyper.
func (d *Decoder) Uint64() uint64 {
	b := d.take(8)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// Bool reads a boolean; any value but 0 or 1 is an error.
func (d *Decoder) Bool() bool {
	v := d.Uint32()
	if v > 1 {
		d.Fail(ErrBool)
		return false
	}
	return v == 1
}

// FixedOpaque reads n bytes of fixed-length opaque data and its padding.
func (d *Decoder) FixedOpaque(n int) []byte {
	b := d.take(n)
	d.padding(n)
	if d.err != nil {
		return nil
	}
	return b
}

// Opaque reads variable-length opaque data of at most max bytes. The result
// aliases the decoder's buffer.
func (d *Decoder) Opaque(max int) []byte {
	n := d.Uint32()
	if d.err != nil {
		return nil
	}
	if uint64(n) > uint64(max) {
		d.Fail(fmt.Errorf("%w: %d > %d", ErrTooLong, n, max))
		return nil
	}
	return d.FixedOpaque(int(n))
}

// String reads a string of at most max bytes. XDR strings are bytes; no
// encoding is checked here.
func (d *Decoder) String(max int) string {
	return string(d.Opaque(max))
}

// Count reads an array length and checks it against max and against the
// bytes left, given that each element takes at least minSize bytes. It
// returns 0 on error, so a loop over the result is always safe.
func (d *Decoder) Count(max, minSize int) int {
	n := d.Uint32()
	if d.err != nil {
		return 0
	}
	if uint64(n) > uint64(max) {
		d.Fail(fmt.Errorf("%w: count %d > %d", ErrTooLong, n, max))
		return 0
	}
	if minSize > 0 && uint64(n)*uint64(minSize) > uint64(d.Remaining()) {
		d.Fail(ErrShort)
		return 0
	}
	return int(n)
}

func (d *Decoder) padding(n int) {
	p := d.take(Pad(n))
	for _, c := range p {
		if c != 0 {
			d.Fail(ErrPadding)
			return
		}
	}
}

// Encoder appends XDR items to a buffer. The zero Encoder is ready to use.
type Encoder struct {
	buf []byte
}

// NewEncoder returns an Encoder that appends to b[:0].
func NewEncoder(b []byte) *Encoder { return &Encoder{buf: b[:0]} }

// Bytes returns the encoded bytes. They alias the encoder's buffer.
func (e *Encoder) Bytes() []byte { return e.buf }

// Len returns the number of bytes encoded.
func (e *Encoder) Len() int { return len(e.buf) }

// Reset empties the encoder, keeping its buffer.
func (e *Encoder) Reset() { e.buf = e.buf[:0] }

// Truncate cuts the encoding back to n bytes, to undo a partly written item.
func (e *Encoder) Truncate(n int) { e.buf = e.buf[:n] }

// Uint32 appends an unsigned int.
func (e *Encoder) Uint32(v uint32) { e.buf = binary.BigEndian.AppendUint32(e.buf, v) }

// Int32 appends a signed int.
func (e *Encoder) Int32(v int32) { e.Uint32(uint32(v)) }

// Uint64 appends an unsigned hyper.
func (e *Encoder) Uint64(v uint64) { e.buf = binary.BigEndian.AppendUint64(e.buf, v) }

// Bool appends a boolean.
func (e *Encoder) Bool(v bool) {
	if v {
		e.Uint32(1)
	} else {
		e.Uint32(0)
	}
}

// FixedOpaque appends b and its padding, without a length.
func (e *Encoder) FixedOpaque(b []byte) {
	e.buf = append(e.buf, b...)
	e.buf = append(e.buf, zeros[:Pad(len(b))]...)
}

// Opaque appends a length, b and its padding.
func (e *Encoder) Opaque(b []byte) {
	e.Uint32(uint32(len(b)))
	e.FixedOpaque(b)
}

// String appends a length, s and its padding.
func (e *Encoder) String(s string) {
	e.Uint32(uint32(len(s)))
	e.buf = append(e.buf, s...)
	e.buf = append(e.buf, zeros[:Pad(len(s))]...)
}

// Reserve appends n zero bytes and returns their offset, for a field that is
// only known later (a count, a length); fill it with PutUint32At.
func (e *Encoder) Reserve(n int) int {
	off := len(e.buf)
	e.buf = append(e.buf, make([]byte, n)...)
	return off
}

// PutUint32At overwrites the 4 bytes at off with v.
func (e *Encoder) PutUint32At(off int, v uint32) {
	binary.BigEndian.PutUint32(e.buf[off:], v)
}

var zeros [4]byte
