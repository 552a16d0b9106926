package rpc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// frag returns one fragment: header and data.
func frag(data []byte, last bool) []byte {
	h := uint32(len(data))
	if last {
		h |= lastFragment
	}
	return append(binary.BigEndian.AppendUint32(nil, h), data...)
}

func readAll(r io.Reader, max int) ([][]byte, error) {
	rr := NewRecordReader(r, max)
	var recs [][]byte
	for {
		rec, err := rr.Next()
		if err != nil {
			return recs, err
		}
		recs = append(recs, append([]byte{}, rec...))
	}
}

func TestRecordReader(t *testing.T) {
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name    string
		stream  []byte
		max     int
		want    [][]byte
		wantErr error
	}{
		{"Empty", nil, 0, nil, io.EOF},
		{"One", frag([]byte("abcd"), true), 0, [][]byte{[]byte("abcd")}, io.EOF},
		{"Two", join(frag([]byte("ab"), true), frag([]byte("cdef"), true)), 0,
			[][]byte{[]byte("ab"), []byte("cdef")}, io.EOF},
		{"Fragments", join(frag([]byte("ab"), false), frag([]byte("c"), false), frag([]byte("def"), true)), 0,
			[][]byte{[]byte("abcdef")}, io.EOF},
		{"ZeroLengthFragments", join(frag(nil, false), frag([]byte("ab"), false), frag(nil, false), frag(nil, true)), 0,
			[][]byte{[]byte("ab")}, io.EOF},
		{"EmptyRecord", frag(nil, true), 0, [][]byte{{}}, io.EOF},
		{"TruncatedHeader", join(frag([]byte("ab"), true), []byte{0x80, 0}), 0,
			[][]byte{[]byte("ab")}, io.ErrUnexpectedEOF},
		{"TruncatedBody", frag([]byte("abcd"), true)[:6], 0, nil, io.ErrUnexpectedEOF},
		{"EOFBetweenFragments", frag([]byte("abcd"), false), 0, nil, io.ErrUnexpectedEOF},
		{"AtLimit", frag(make([]byte, 16), true), 16, [][]byte{make([]byte, 16)}, io.EOF},
		{"OverLimit", frag(make([]byte, 17), true), 16, nil, ErrRecordTooLarge},
		{"FragmentsOverLimit", join(frag(make([]byte, 10), false), frag(make([]byte, 7), true)), 16, nil, ErrRecordTooLarge},
		{"Claims2GiB", []byte{0xff, 0xff, 0xff, 0xff}, 0, nil, ErrRecordTooLarge},
		{"Claims2GiBNotLast", []byte{0x7f, 0xff, 0xff, 0xff}, 0, nil, ErrRecordTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, r := range []io.Reader{bytes.NewReader(tt.stream), iotest.OneByteReader(bytes.NewReader(tt.stream)),
				iotest.HalfReader(bytes.NewReader(tt.stream))} {
				got, err := readAll(r, tt.max)
				if !errors.Is(err, tt.wantErr) || (tt.wantErr == io.EOF && err != io.EOF) {
					t.Errorf("error %v, want %v", err, tt.wantErr)
				}
				if len(got) != len(tt.want) {
					t.Fatalf("got %d records, want %d", len(got), len(tt.want))
				}
				for i := range got {
					if !bytes.Equal(got[i], tt.want[i]) {
						t.Errorf("record %d = %x, want %x", i, got[i], tt.want[i])
					}
				}
			}
		})
	}
}

// TestRecordReaderNoAllocForClaims checks that a header claiming a huge
// fragment costs nothing until the bytes arrive.
func TestRecordReaderNoAllocForClaims(t *testing.T) {
	stream := append([]byte{0x80, 0x10, 0, 0}, make([]byte, 100)...) // claims 1 MiB, sends 100 bytes
	allocs := testing.AllocsPerRun(10, func() {
		rr := NewRecordReader(bytes.NewReader(stream), 2<<20)
		rr.Next()
	})
	rr := NewRecordReader(bytes.NewReader(stream), 2<<20)
	if _, err := rr.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err %v", err)
	}
	if cap(rr.buf) > 64<<10 {
		t.Errorf("buffer grew to %d for 100 bytes received", cap(rr.buf))
	}
	if allocs > 10 {
		t.Errorf("%v allocations", allocs)
	}
}

func TestFrameRecord(t *testing.T) {
	msg := []byte("hello world!")
	framed := FrameRecord(msg)
	if want := append([]byte{0x80, 0, 0, 12}, msg...); !bytes.Equal(framed, want) {
		t.Fatalf("FrameRecord %x", framed)
	}
	buf := append(make([]byte, 4), msg...)
	PutRecordMark(buf)
	if !bytes.Equal(buf, framed) {
		t.Errorf("PutRecordMark %x", buf)
	}
	got, err := readAll(bytes.NewReader(framed), 0)
	if err != io.EOF || len(got) != 1 || !bytes.Equal(got[0], msg) {
		t.Errorf("read back %q, %v", got, err)
	}
}

// splitReader returns the stream in two reads split at n, then one byte at
// a time after that.
type splitReader struct {
	b     []byte
	split int
	reads int
}

func (s *splitReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := len(p)
	if s.reads == 0 {
		n = min(n, s.split)
	} else if s.reads > 1 {
		n = 1
	}
	n = min(n, len(s.b))
	s.reads++
	copy(p, s.b[:n])
	s.b = s.b[n:]
	return n, nil
}

func errClass(err error) string {
	switch {
	case err == io.EOF:
		return "eof"
	case errors.Is(err, ErrRecordTooLarge):
		return "too large"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated"
	}
	return "other: " + err.Error()
}

// FuzzRecordReader checks that splitting a stream at any point yields the
// same records and the same final error, and that the buffer never grows
// beyond what the limit and the received bytes allow.
func FuzzRecordReader(f *testing.F) {
	f.Add(frag([]byte("abcd"), true), uint16(2), uint16(0))
	f.Add(bytes.Join([][]byte{frag(nil, false), frag([]byte("ab"), false), frag([]byte("cdef"), true), frag(nil, true)}, nil), uint16(7), uint16(8))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3}, uint16(1), uint16(0))
	f.Add(bytes.Join([][]byte{frag(make([]byte, 40), false), frag(make([]byte, 30), true)}, nil), uint16(44), uint16(64))
	f.Fuzz(func(t *testing.T, stream []byte, split, max uint16) {
		want, wantErr := readAll(bytes.NewReader(stream), int(max))
		got, err := readAll(&splitReader{b: stream, split: int(split)}, int(max))
		if errClass(err) != errClass(wantErr) {
			t.Fatalf("split at %d: error %v, whole stream: %v", split, err, wantErr)
		}
		if e := errClass(err); e != "eof" && e != "too large" && e != "truncated" {
			t.Fatalf("unexpected error %v", err)
		}
		if len(got) != len(want) {
			t.Fatalf("split at %d: %d records, whole stream %d", split, len(got), len(want))
		}
		limit := int(max)
		if limit <= 0 {
			limit = MaxRecord
		}
		total := 0
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("record %d differs: %x vs %x", i, got[i], want[i])
			}
			if len(got[i]) > limit {
				t.Fatalf("record of %d bytes over limit %d", len(got[i]), limit)
			}
			total += 4 + len(got[i])
		}
		if total > len(stream) {
			t.Fatalf("records hold %d bytes from a %d-byte stream", total, len(stream))
		}
		// NextInto gives the same records in the caller's buffer.
		rr := NewRecordReader(bytes.NewReader(stream), int(max))
		var buf []byte
		for i := 0; ; i++ {
			rec, err := rr.NextInto(buf)
			if err != nil {
				if errClass(err) != errClass(wantErr) || i != len(want) {
					t.Fatalf("NextInto: error %v after %d records, want %v after %d", err, i, wantErr, len(want))
				}
				break
			}
			if !bytes.Equal(rec, want[i]) {
				t.Fatalf("NextInto record %d = %x, want %x", i, rec, want[i])
			}
			buf = rec
		}
		if cap(rr.buf) != 0 {
			t.Fatalf("NextInto left a %d-byte buffer in the reader", cap(rr.buf))
		}

		rr = NewRecordReader(bytes.NewReader(stream), int(max))
		for {
			if _, err := rr.Next(); err != nil {
				break
			}
		}
		if c := cap(rr.buf); c > 2*len(stream)+64<<10 {
			t.Fatalf("buffer capacity %d for a %d-byte stream", c, len(stream))
		}
	})
}

func TestNextIntoReusesBuffer(t *testing.T) {
	stream := bytes.Join([][]byte{frag([]byte("abcd"), false), frag([]byte("efgh"), true), frag([]byte("ij"), true)}, nil)
	rr := NewRecordReader(bytes.NewReader(stream), 0)
	buf := make([]byte, 0, 64)
	rec, err := rr.NextInto(buf)
	if err != nil || string(rec) != "abcdefgh" || &rec[:1][0] != &buf[:1][0] {
		t.Fatalf("first record %q, %v (in the caller's buffer: %v)", rec, err, err == nil && &rec[:1][0] == &buf[:1][0])
	}
	rec2, err := rr.NextInto(make([]byte, 0, 1))
	if err != nil || string(rec2) != "ij" || string(rec) != "abcdefgh" {
		t.Fatalf("second record %q (first now %q), %v", rec2, rec, err)
	}
	if _, err := rr.NextInto(buf); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
}
