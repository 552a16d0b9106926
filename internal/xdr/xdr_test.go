package xdr

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

func TestPad(t *testing.T) {
	for n, want := range []int{0, 3, 2, 1, 0, 3, 2, 1, 0} {
		if got := Pad(n); got != want {
			t.Errorf("Pad(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	var e Encoder
	e.Uint32(0xdeadbeef)
	e.Int32(-2)
	e.Uint64(math.MaxUint64 - 1)
	e.Bool(true)
	e.Bool(false)
	e.Opaque([]byte("abcde"))
	e.String("xyz")
	e.FixedOpaque([]byte{9, 8})
	e.Opaque(nil)
	want := []byte{
		0xde, 0xad, 0xbe, 0xef,
		0xff, 0xff, 0xff, 0xfe,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
		0, 0, 0, 1,
		0, 0, 0, 0,
		0, 0, 0, 5, 'a', 'b', 'c', 'd', 'e', 0, 0, 0,
		0, 0, 0, 3, 'x', 'y', 'z', 0,
		9, 8, 0, 0,
		0, 0, 0, 0,
	}
	if !bytes.Equal(e.Bytes(), want) {
		t.Fatalf("encoded\n%x\nwant\n%x", e.Bytes(), want)
	}
	if e.Len() != len(want) {
		t.Errorf("Len %d", e.Len())
	}
	d := NewDecoder(e.Bytes())
	if v := d.Uint32(); v != 0xdeadbeef {
		t.Errorf("Uint32 %x", v)
	}
	if v := d.Int32(); v != -2 {
		t.Errorf("Int32 %d", v)
	}
	if v := d.Uint64(); v != math.MaxUint64-1 {
		t.Errorf("Uint64 %x", v)
	}
	if !d.Bool() || d.Bool() {
		t.Error("Bool")
	}
	if v := d.Opaque(5); string(v) != "abcde" {
		t.Errorf("Opaque %q", v)
	}
	if v := d.String(3); v != "xyz" {
		t.Errorf("String %q", v)
	}
	if v := d.FixedOpaque(2); !bytes.Equal(v, []byte{9, 8}) {
		t.Errorf("FixedOpaque %x", v)
	}
	if v := d.Opaque(0); len(v) != 0 {
		t.Errorf("empty Opaque %x", v)
	}
	if d.Offset() != len(want) || d.Remaining() != 0 {
		t.Errorf("Offset %d Remaining %d", d.Offset(), d.Remaining())
	}
	if err := d.Done(); err != nil {
		t.Errorf("Done: %v", err)
	}
}

func TestDecoderErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		read func(d *Decoder)
		want error
	}{
		{"ShortUint32", []byte{0, 0, 1}, func(d *Decoder) { d.Uint32() }, ErrShort},
		{"ShortUint64", []byte{0, 0, 0, 0, 0, 0, 1}, func(d *Decoder) { d.Uint64() }, ErrShort},
		{"Bool2", []byte{0, 0, 0, 2}, func(d *Decoder) { d.Bool() }, ErrBool},
		{"OpaqueTooLong", []byte{0, 0, 0, 5, 1, 2, 3, 4, 5, 0, 0, 0}, func(d *Decoder) { d.Opaque(4) }, ErrTooLong},
		{"OpaqueHugeLength", []byte{0xff, 0xff, 0xff, 0xff}, func(d *Decoder) { d.Opaque(math.MaxInt32) }, ErrTooLong},
		{"OpaqueShort", []byte{0, 0, 0, 8, 1, 2, 3, 4}, func(d *Decoder) { d.Opaque(100) }, ErrShort},
		{"OpaqueMissingPadding", []byte{0, 0, 0, 1, 1}, func(d *Decoder) { d.Opaque(100) }, ErrShort},
		{"OpaqueNonZeroPadding", []byte{0, 0, 0, 1, 1, 0, 1, 0}, func(d *Decoder) { d.Opaque(100) }, ErrPadding},
		{"StringNonZeroPadding", []byte{0, 0, 0, 3, 'a', 'b', 'c', 7}, func(d *Decoder) { d.String(100) }, ErrPadding},
		{"FixedNonZeroPadding", []byte{1, 2, 0xff, 0}, func(d *Decoder) { d.FixedOpaque(2) }, ErrPadding},
		{"FixedNegative", []byte{1, 2, 3, 4}, func(d *Decoder) { d.FixedOpaque(-1) }, ErrShort},
		{"CountOverMax", []byte{0, 0, 0, 17}, func(d *Decoder) { d.Count(16, 4) }, ErrTooLong},
		{"CountOverRemaining", []byte{0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2}, func(d *Decoder) { d.Count(16, 4) }, ErrShort},
		{"CountHuge", []byte{0x7f, 0xff, 0xff, 0xff}, func(d *Decoder) { d.Count(math.MaxInt32, 1<<30) }, ErrShort},
		{"Trailing", []byte{0, 0, 0, 1, 0}, func(d *Decoder) { d.Uint32() }, ErrTrailing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDecoder(tt.in)
			tt.read(d)
			if err := d.Done(); !errors.Is(err, tt.want) {
				t.Errorf("Done() = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDecoderSticky(t *testing.T) {
	d := NewDecoder([]byte{0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 7})
	d.Bool() // fails: 2
	if v := d.Uint32(); v != 0 {
		t.Errorf("Uint32 after error = %d, want 0", v)
	}
	if v := d.Opaque(10); v != nil {
		t.Errorf("Opaque after error = %x", v)
	}
	if n := d.Count(10, 0); n != 0 {
		t.Errorf("Count after error = %d", n)
	}
	if !errors.Is(d.Err(), ErrBool) {
		t.Errorf("Err %v, want the first error", d.Err())
	}
	d.Fail(errors.New("later"))
	if !errors.Is(d.Err(), ErrBool) {
		t.Errorf("Fail replaced the first error: %v", d.Err())
	}
	d.Reset([]byte{0, 0, 0, 1})
	if d.Err() != nil || d.Uint32() != 1 || d.Done() != nil {
		t.Errorf("Reset did not clear the decoder")
	}
}

func TestCount(t *testing.T) {
	d := NewDecoder([]byte{0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2})
	n := d.Count(16, 4)
	if n != 2 || d.Err() != nil {
		t.Fatalf("Count = %d, %v", n, d.Err())
	}
	var sum uint32
	for range n {
		sum += d.Uint32()
	}
	if sum != 3 || d.Done() != nil {
		t.Errorf("sum %d, %v", sum, d.Done())
	}
	// minSize 0 checks only the maximum.
	d = NewDecoder([]byte{0, 0, 0, 9})
	if n := d.Count(10, 0); n != 9 || d.Err() != nil {
		t.Errorf("Count(10, 0) = %d, %v", n, d.Err())
	}
	// Count exactly at the bound.
	d = NewDecoder([]byte{0, 0, 0, 16})
	if n := d.Count(16, 0); n != 16 {
		t.Errorf("Count at max = %d, %v", n, d.Err())
	}
}

func TestOpaqueAliases(t *testing.T) {
	in := []byte{0, 0, 0, 2, 'a', 'b', 0, 0, 1, 2, 3, 4}
	d := NewDecoder(in)
	b := d.Opaque(10)
	if cap(b) != 2 {
		t.Errorf("Opaque result has cap %d: appending to it would overwrite the input", cap(b))
	}
	in[4] = 'z'
	if b[0] != 'z' {
		t.Error("Opaque does not alias its input")
	}
	if !bytes.Equal(d.Rest(), []byte{1, 2, 3, 4}) {
		t.Errorf("Rest %x", d.Rest())
	}
}

func TestEncoderReserveTruncate(t *testing.T) {
	e := NewEncoder(make([]byte, 10))
	if e.Len() != 0 {
		t.Fatalf("NewEncoder kept %d bytes", e.Len())
	}
	e.Uint32(1)
	off := e.Reserve(4)
	e.Uint32(3)
	e.PutUint32At(off, 2)
	if want := []byte{0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3}; !bytes.Equal(e.Bytes(), want) {
		t.Errorf("got %x", e.Bytes())
	}
	e.Truncate(4)
	e.String("a")
	if want := []byte{0, 0, 0, 1, 0, 0, 0, 1, 'a', 0, 0, 0}; !bytes.Equal(e.Bytes(), want) {
		t.Errorf("after Truncate %x", e.Bytes())
	}
	e.Reset()
	if e.Len() != 0 {
		t.Errorf("Reset left %d", e.Len())
	}
}

// FuzzDecoder decodes arbitrary input as a mixed sequence of items chosen
// by the input itself; it must never panic, and whatever decodes must
// encode back to the bytes consumed.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte{0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 0, 1})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1})
	f.Add([]byte{0, 0, 0, 2, 0, 0, 0, 9, 0, 0, 0, 8, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		d := NewDecoder(in)
		var e Encoder
		for i := 0; d.Err() == nil && d.Remaining() > 0 && i < 64; i++ {
			tag := d.Uint32()
			switch tag % 5 {
			case 0:
				v := d.Uint32()
				if d.Err() == nil {
					e.Uint32(tag)
					e.Uint32(v)
				}
			case 1:
				v := d.Uint64()
				if d.Err() == nil {
					e.Uint32(tag)
					e.Uint64(v)
				}
			case 2:
				v := d.Bool()
				if d.Err() == nil {
					e.Uint32(tag)
					e.Bool(v)
				}
			case 3:
				v := d.Opaque(64)
				if d.Err() == nil {
					e.Uint32(tag)
					e.Opaque(v)
				}
			case 4:
				n := d.Count(8, 4)
				vs := make([]uint32, n)
				for j := range vs {
					vs[j] = d.Uint32()
				}
				if d.Err() == nil {
					e.Uint32(tag)
					e.Uint32(uint32(n))
					for _, v := range vs {
						e.Uint32(v)
					}
				}
			}
		}
		if d.Err() == nil && !bytes.Equal(e.Bytes(), in[:d.Offset()]) {
			t.Fatalf("re-encoded %x, consumed %x", e.Bytes(), in[:d.Offset()])
		}
		if d.Offset() > len(in) {
			t.Fatalf("offset %d past input %d", d.Offset(), len(in))
		}
	})
}
