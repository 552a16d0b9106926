package portmap

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"github.com/mailnfs/mailnfs/internal/xdr"
)

func encode(f func(e *xdr.Encoder)) []byte {
	var e xdr.Encoder
	f(&e)
	return append([]byte(nil), e.Bytes()...)
}

// TestMappingWire checks the byte layout of a pmap and a pmaplist against
// RFC 1833 §3.1 written out by hand.
func TestMappingWire(t *testing.T) {
	m := Mapping{Prog: 100003, Vers: 3, Prot: IPProtoTCP, Port: 2049}
	got := encode(func(e *xdr.Encoder) { EncodeMappingList(e, []Mapping{m}) })
	want := []byte{
		0, 0, 0, 1, // TRUE
		0, 1, 0x86, 0xa3, // 100003
		0, 0, 0, 3,
		0, 0, 0, 6,
		0, 0, 8, 1, // 2049
		0, 0, 0, 0, // FALSE
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("pmaplist = %x, want %x", got, want)
	}
	d := xdr.NewDecoder(got)
	ms := DecodeMappingList(d)
	if err := d.Done(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ms, []Mapping{m}) {
		t.Fatalf("decoded %+v", ms)
	}
}

func TestRoundTrip(t *testing.T) {
	cases := map[string]struct {
		enc func(e *xdr.Encoder)
		dec func(d *xdr.Decoder) any
		v   any
	}{
		"Mapping": {
			enc: Mapping{1, 2, 17, 65535}.Encode,
			dec: func(d *xdr.Decoder) any { return DecodeMapping(d) },
			v:   Mapping{1, 2, 17, 65535},
		},
		"MappingListEmpty": {
			enc: func(e *xdr.Encoder) { EncodeMappingList(e, nil) },
			dec: func(d *xdr.Decoder) any { return DecodeMappingList(d) },
			v:   []Mapping(nil),
		},
		"RPCB": {
			enc: RPCB{100005, 3, "tcp6", "::1.3.241", "superuser"}.Encode,
			dec: func(d *xdr.Decoder) any { return DecodeRPCB(d) },
			v:   RPCB{100005, 3, "tcp6", "::1.3.241", "superuser"},
		},
		"RPCBList": {
			enc: func(e *xdr.Encoder) {
				EncodeRPCBList(e, []RPCB{{1, 2, "udp", "0.0.0.0.0.111", "x"}, {3, 4, "tcp", "", ""}})
			},
			dec: func(d *xdr.Decoder) any { return DecodeRPCBList(d) },
			v:   []RPCB{{1, 2, "udp", "0.0.0.0.0.111", "x"}, {3, 4, "tcp", "", ""}},
		},
		"EntryList": {
			enc: func(e *xdr.Encoder) {
				EncodeEntryList(e, []Entry{{"127.0.0.1.8.1", "tcp", SemanticsCOTSOrd, "inet", "tcp"}})
			},
			dec: func(d *xdr.Decoder) any { return DecodeEntryList(d) },
			v:   []Entry{{"127.0.0.1.8.1", "tcp", SemanticsCOTSOrd, "inet", "tcp"}},
		},
		"CallArgs": {
			enc: CallArgs{100003, 3, 0, []byte{1, 2, 3}}.Encode,
			dec: func(d *xdr.Decoder) any { return DecodeCallArgs(d) },
			v:   CallArgs{100003, 3, 0, []byte{1, 2, 3}},
		},
		"CallResult": {
			enc: CallResult{2049, []byte{9}}.Encode,
			dec: func(d *xdr.Decoder) any { return DecodeCallResult(d) },
			v:   CallResult{2049, []byte{9}},
		},
		"RmtCallRes": {
			enc: RmtCallRes{"127.0.0.1.0.111", []byte{}}.Encode,
			dec: func(d *xdr.Decoder) any { return DecodeRmtCallRes(d) },
			v:   RmtCallRes{"127.0.0.1.0.111", []byte{}},
		},
		"Netbuf": {
			enc: Netbuf{16, []byte{0, 2, 0, 111, 127, 0, 0, 1}}.Encode,
			dec: func(d *xdr.Decoder) any { return DecodeNetbuf(d) },
			v:   Netbuf{16, []byte{0, 2, 0, 111, 127, 0, 0, 1}},
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			b := encode(c.enc)
			d := xdr.NewDecoder(b)
			got := c.dec(d)
			if err := d.Done(); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.v) {
				t.Fatalf("got %#v, want %#v", got, c.v)
			}
		})
	}
}

func TestDecodeBounds(t *testing.T) {
	t.Run("NetidTooLong", func(t *testing.T) {
		b := encode(RPCB{1, 1, string(make([]byte, MaxNetid+1)), "", ""}.Encode)
		d := xdr.NewDecoder(b)
		DecodeRPCB(d)
		if !errors.Is(d.Err(), xdr.ErrTooLong) {
			t.Fatalf("err = %v, want ErrTooLong", d.Err())
		}
	})
	t.Run("UaddrTooLong", func(t *testing.T) {
		b := encode(RPCB{1, 1, "tcp", string(make([]byte, MaxUaddr+1)), ""}.Encode)
		d := xdr.NewDecoder(b)
		DecodeRPCB(d)
		if !errors.Is(d.Err(), xdr.ErrTooLong) {
			t.Fatalf("err = %v, want ErrTooLong", d.Err())
		}
	})
	t.Run("ListTooLong", func(t *testing.T) {
		ms := make([]Mapping, MaxListEntries+1)
		d := xdr.NewDecoder(encode(func(e *xdr.Encoder) { EncodeMappingList(e, ms) }))
		if got := DecodeMappingList(d); got != nil || !errors.Is(d.Err(), ErrListTooLong) {
			t.Fatalf("got %d entries, err %v; want nil, ErrListTooLong", len(got), d.Err())
		}
	})
	t.Run("ListAtMaximum", func(t *testing.T) {
		ms := make([]Mapping, MaxListEntries)
		d := xdr.NewDecoder(encode(func(e *xdr.Encoder) { EncodeMappingList(e, ms) }))
		if got := DecodeMappingList(d); len(got) != MaxListEntries || d.Done() != nil {
			t.Fatalf("got %d entries, err %v", len(got), d.Done())
		}
	})
	t.Run("ListUnterminated", func(t *testing.T) {
		b := encode(func(e *xdr.Encoder) { EncodeMappingList(e, []Mapping{{}}) })
		d := xdr.NewDecoder(b[:len(b)-4])
		if got := DecodeMappingList(d); got != nil || !errors.Is(d.Err(), xdr.ErrShort) {
			t.Fatalf("got %v, err %v; want nil, ErrShort", got, d.Err())
		}
	})
	t.Run("ListBadBool", func(t *testing.T) {
		d := xdr.NewDecoder([]byte{0, 0, 0, 2})
		if DecodeRPCBList(d); !errors.Is(d.Err(), xdr.ErrBool) {
			t.Fatalf("err = %v, want ErrBool", d.Err())
		}
	})
}

func TestUaddr(t *testing.T) {
	cases := []struct {
		s  string
		ap netip.AddrPort
	}{
		{"127.0.0.1.8.1", netip.MustParseAddrPort("127.0.0.1:2049")},
		{"::1.8.1", netip.MustParseAddrPort("[::1]:2049")},
		{"0.0.0.0.0.111", netip.MustParseAddrPort("0.0.0.0:111")},
		{"::.8.1", netip.MustParseAddrPort("[::]:2049")},
		{"192.0.2.7.255.255", netip.MustParseAddrPort("192.0.2.7:65535")},
		{"10.1.2.3.0.0", netip.MustParseAddrPort("10.1.2.3:0")},
		{"fe80::1.3.241", netip.MustParseAddrPort("[fe80::1]:1009")},
		{"::ffff:127.0.0.1.0.111", netip.MustParseAddrPort("[::ffff:127.0.0.1]:111")},
	}
	for _, c := range cases {
		if got := FormatUaddr(c.ap); got != c.s {
			t.Errorf("FormatUaddr(%v) = %q, want %q", c.ap, got, c.s)
		}
		got, err := ParseUaddr(c.s)
		if err != nil || got != c.ap {
			t.Errorf("ParseUaddr(%q) = %v, %v; want %v", c.s, got, err, c.ap)
		}
	}
	if got := FormatUaddr(netip.MustParseAddrPort("[fe80::1%eth0]:2049")); got != "fe80::1.8.1" {
		t.Errorf("zone not dropped: %q", got)
	}
	if got := FormatUaddr(netip.AddrPort{}); got != "" {
		t.Errorf("FormatUaddr(invalid) = %q", got)
	}
	// Leading zeros in a port byte are accepted, as TI-RPC's sscanf("%u") does.
	if got, err := ParseUaddr("127.0.0.1.008.001"); err != nil || got.Port() != 2049 {
		t.Errorf("ParseUaddr leading zeros = %v, %v", got, err)
	}
	for _, bad := range []string{
		"", "127.0.0.1", "127.0.0.1.8", "127.0.0.1.8.256", "127.0.0.1.256.0", "127.0.0.1.8.-1",
		"127.0.0.1.8.+1", "127.0.0.1..1", "127.0.0.1.8.", "127.0.0.1.1000.1", "localhost.8.1",
		"fe80::1%eth0.8.1", "[::1].8.1", "1.2.3.8.1", "::1:8.1",
	} {
		if ap, err := ParseUaddr(bad); !errors.Is(err, ErrBadUaddr) {
			t.Errorf("ParseUaddr(%q) = %v, %v; want ErrBadUaddr", bad, ap, err)
		}
	}
}

func TestNetid(t *testing.T) {
	v4, v6, m := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1"), netip.MustParseAddr("::ffff:127.0.0.1")
	cases := []struct {
		net  string
		a    netip.Addr
		want string
	}{
		{"tcp", v4, "tcp"}, {"udp", v4, "udp"}, {"tcp", v6, "tcp6"}, {"udp", v6, "udp6"},
		{"tcp", m, "tcp6"}, {"unix", v4, ""},
	}
	for _, c := range cases {
		if got := Netid(c.net, c.a); got != c.want {
			t.Errorf("Netid(%q, %v) = %q, want %q", c.net, c.a, got, c.want)
		}
	}
	for _, n := range []string{NetidTCP, NetidUDP, NetidTCP6, NetidUDP6} {
		info, ok := LookupNetid(n)
		if !ok {
			t.Fatalf("LookupNetid(%q) not found", n)
		}
		if want := Netid(info.Proto, map[bool]netip.Addr{false: v4, true: v6}[info.IPv6]); want != n {
			t.Errorf("LookupNetid(%q) = %+v, inconsistent with Netid", n, info)
		}
	}
	if _, ok := LookupNetid("local"); ok {
		t.Error("LookupNetid(local) found")
	}
}
