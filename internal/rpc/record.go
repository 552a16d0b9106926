package rpc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// MaxRecord is the default bound on one reassembled record: a 1 MiB WRITE
// plus generous room for headers and the handle.
const MaxRecord = 1<<20 + 64<<10

const lastFragment = 1 << 31

// ErrRecordTooLarge means a record's fragments add up to more than the
// reader's limit. The connection cannot be resynchronised and must close.
var ErrRecordTooLarge = errors.New("rpc: record exceeds size limit")

// RecordReader reassembles record-marked messages (RFC 5531 §11) from a
// stream. It grows its buffer only as data actually arrives, so a fragment
// header claiming 2 GiB costs nothing until the bytes are there, and the
// limit stops it before then.
type RecordReader struct {
	r   io.Reader
	max int
	buf []byte
	hdr [4]byte
}

// NewRecordReader returns a reader of records of at most max bytes
// (MaxRecord if max <= 0).
func NewRecordReader(r io.Reader, max int) *RecordReader {
	if max <= 0 {
		max = MaxRecord
	}
	return &RecordReader{r: r, max: max}
}

// Next returns the next whole record. The slice is valid until the next call.
// io.EOF means the stream ended cleanly between records.
func (rr *RecordReader) Next() ([]byte, error) {
	rr.buf = rr.buf[:0]
	for first := true; ; first = false {
		if _, err := io.ReadFull(rr.r, rr.hdr[:]); err != nil {
			if first && err == io.EOF {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("rpc: record header: %w", noEOF(err))
		}
		h := binary.BigEndian.Uint32(rr.hdr[:])
		n := int(h &^ lastFragment)
		// n > max-len, not len+n > max: on a 32-bit int, len+n could
		// wrap past the limit (len(rr.buf) <= max always holds).
		if n > rr.max-len(rr.buf) {
			return nil, fmt.Errorf("%w: fragment of %d bytes after %d, limit %d", ErrRecordTooLarge, n, len(rr.buf), rr.max)
		}
		if err := rr.read(n); err != nil {
			return nil, fmt.Errorf("rpc: record body: %w", noEOF(err))
		}
		if h&lastFragment != 0 {
			return rr.buf, nil
		}
	}
}

// NextInto is like Next but reassembles the record in buf (from buf[:0],
// growing it only as data arrives) and keeps no reference to it, so the
// caller owns the result; on error the returned slice may still be reused.
// A server reads each record into its own pooled buffer this way, with no
// copy and no large buffer left behind in an idle connection's reader.
func (rr *RecordReader) NextInto(buf []byte) ([]byte, error) {
	saved := rr.buf
	rr.buf = buf[:0]
	rec, err := rr.Next()
	if err != nil {
		rec = rr.buf[:0]
	}
	rr.buf = saved[:0]
	return rec, err
}

// read appends n bytes, growing the buffer in steps of at most 64 KiB beyond
// what has arrived.
func (rr *RecordReader) read(n int) error {
	for n > 0 {
		chunk := min(n, 64<<10)
		start := len(rr.buf)
		if cap(rr.buf)-start < chunk {
			nb := make([]byte, start, max(2*cap(rr.buf), start+chunk))
			copy(nb, rr.buf)
			rr.buf = nb
		}
		rr.buf = rr.buf[:start+chunk]
		if _, err := io.ReadFull(rr.r, rr.buf[start:]); err != nil {
			return err
		}
		n -= chunk
	}
	return nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// FrameRecord returns msg as one last fragment: the 4-byte header followed by
// msg. Callers that build replies in place leave 4 bytes free at the front
// and call PutRecordMark instead.
func FrameRecord(msg []byte) []byte {
	out := make([]byte, 4+len(msg))
	PutRecordMark(out)
	copy(out[4:], msg)
	return out
}

// PutRecordMark writes the last-fragment header for buf[4:] into buf[:4].
func PutRecordMark(buf []byte) {
	binary.BigEndian.PutUint32(buf, lastFragment|uint32(len(buf)-4))
}
