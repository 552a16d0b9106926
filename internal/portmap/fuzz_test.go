package portmap

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/mailnfs/mailnfs/internal/xdr"
)

// fuzzCanonical checks the decoder property shared by every type here: input
// that decodes without error and without trailing bytes re-encodes to exactly
// the same bytes (XDR is canonical once padding must be zero and booleans
// are 0 or 1), and no input panics.
func fuzzCanonical[T any](f *testing.F, seeds [][]byte, dec func(*xdr.Decoder) T, enc func(*xdr.Encoder, T)) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d := xdr.NewDecoder(b)
		v := dec(d)
		if d.Done() != nil {
			return
		}
		var e xdr.Encoder
		enc(&e, v)
		if !bytes.Equal(e.Bytes(), b) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", b, e.Bytes())
		}
	})
}

func FuzzDecodeMapping(f *testing.F) {
	fuzzCanonical(f, [][]byte{
		encode(Mapping{100003, 3, 6, 2049}.Encode),
		{0, 0, 0, 1},
	}, DecodeMapping, func(e *xdr.Encoder, m Mapping) { m.Encode(e) })
}

func FuzzDecodeMappingList(f *testing.F) {
	fuzzCanonical(f, [][]byte{
		encode(func(e *xdr.Encoder) {
			EncodeMappingList(e, []Mapping{{100000, 2, 6, 111}, {100000, 2, 17, 111}})
		}),
		{0, 0, 0, 0},
		{0, 0, 0, 1, 0, 0, 0, 1},
	}, DecodeMappingList, EncodeMappingList)
}

func FuzzDecodeCallArgs(f *testing.F) {
	fuzzCanonical(f, [][]byte{
		encode(CallArgs{100003, 3, 0, []byte("abcde")}.Encode),
	}, DecodeCallArgs, func(e *xdr.Encoder, a CallArgs) { a.Encode(e) })
}

func FuzzDecodeCallResult(f *testing.F) {
	fuzzCanonical(f, [][]byte{
		encode(CallResult{2049, []byte{1}}.Encode),
	}, DecodeCallResult, func(e *xdr.Encoder, r CallResult) { r.Encode(e) })
}

func FuzzDecodeRPCB(f *testing.F) {
	fuzzCanonical(f, [][]byte{
		encode(RPCB{100003, 3, "tcp", "127.0.0.1.8.1", "superuser"}.Encode),
		encode(RPCB{100005, 1, "udp6", "::1.3.241", ""}.Encode),
	}, DecodeRPCB, func(e *xdr.Encoder, b RPCB) { b.Encode(e) })
}

func FuzzDecodeRPCBList(f *testing.F) {
	fuzzCanonical(f, [][]byte{
		encode(func(e *xdr.Encoder) {
			EncodeRPCBList(e, []RPCB{{100000, 4, "tcp", "0.0.0.0.0.111", "superuser"}, {100000, 4, "udp6", "::.0.111", "superuser"}})
		}),
		{0, 0, 0, 0},
	}, DecodeRPCBList, EncodeRPCBList)
}

func FuzzDecodeEntryList(f *testing.F) {
	fuzzCanonical(f, [][]byte{
		encode(func(e *xdr.Encoder) {
			EncodeEntryList(e, []Entry{
				{"127.0.0.1.8.1", "tcp", SemanticsCOTSOrd, "inet", "tcp"},
				{"::1.8.1", "udp6", SemanticsCLTS, "inet6", "udp"},
			})
		}),
	}, DecodeEntryList, EncodeEntryList)
}

func FuzzDecodeEntry(f *testing.F) {
	fuzzCanonical(f, [][]byte{
		encode(Entry{"127.0.0.1.8.1", "tcp", SemanticsCOTSOrd, "inet", "tcp"}.Encode),
	}, DecodeEntry, func(e *xdr.Encoder, en Entry) { en.Encode(e) })
}

func FuzzDecodeRmtCallRes(f *testing.F) {
	fuzzCanonical(f, [][]byte{
		encode(RmtCallRes{"127.0.0.1.8.1", []byte{0, 0, 0, 0}}.Encode),
	}, DecodeRmtCallRes, func(e *xdr.Encoder, r RmtCallRes) { r.Encode(e) })
}

func FuzzDecodeNetbuf(f *testing.F) {
	fuzzCanonical(f, [][]byte{
		encode(Netbuf{16, []byte{0, 2, 8, 1, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}}.Encode),
	}, DecodeNetbuf, func(e *xdr.Encoder, n Netbuf) { n.Encode(e) })
}

// FuzzParseUaddr checks that ParseUaddr never panics, that what it accepts
// formats back to an address it parses to the same value, and that a
// formatted address parses back (round trip in both directions).
func FuzzParseUaddr(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1.8.1", "::1.8.1", "0.0.0.0.0.111", "::.8.1", "::ffff:10.0.0.1.255.255",
		"fe80::1%eth0.8.1", "1.2.3.4.008.1", "", ".", "..", "1.2.3.4.256.0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ap, err := ParseUaddr(s)
		if err != nil {
			return
		}
		u := FormatUaddr(ap)
		ap2, err := ParseUaddr(u)
		if err != nil || ap2 != ap {
			t.Fatalf("ParseUaddr(%q) = %v; FormatUaddr = %q; reparsed %v, %v", s, ap, u, ap2, err)
		}
		if u2 := FormatUaddr(ap2); u2 != u {
			t.Fatalf("FormatUaddr not stable: %q then %q", u, u2)
		}
	})
}

// FuzzFormatUaddr checks the other direction: any address and port formats
// to a uaddr that parses back to the same address (zone dropped) and port.
func FuzzFormatUaddr(f *testing.F) {
	f.Add([]byte{127, 0, 0, 1}, uint16(2049))
	f.Add(make([]byte, 16), uint16(111))
	f.Fuzz(func(t *testing.T, ip []byte, port uint16) {
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			return
		}
		ap := netip.AddrPortFrom(a, port)
		got, err := ParseUaddr(FormatUaddr(ap))
		if err != nil || got != ap {
			t.Fatalf("round trip of %v via %q = %v, %v", ap, FormatUaddr(ap), got, err)
		}
	})
}
