package rpc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/mailnfs/mailnfs/internal/xdr"
)

func be(w ...uint32) []byte {
	var b []byte
	for _, v := range w {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

func TestCallRoundTrip(t *testing.T) {
	sys := AuthSysParms{Stamp: 1, MachineName: "host", UID: 1000, GID: 100, GIDs: []uint32{4, 24}}
	h := CallHeader{XID: 0x1234, RPCVers: Version, Prog: ProgNFS, Vers: 3, Proc: 1, Cred: sys.Credential(),
		Verf: OpaqueAuth{Flavor: AuthNone, Body: []byte{}}}
	var e xdr.Encoder
	h.Encode(&e)
	e.Uint32(0xabcdef) // arguments
	d := xdr.NewDecoder(e.Bytes())
	got, err := DecodeCall(d)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, h) {
		t.Errorf("decoded %+v, want %+v", got, h)
	}
	if v := d.Uint32(); v != 0xabcdef || d.Done() != nil {
		t.Errorf("decoder not left at the arguments: %x %v", v, d.Done())
	}
	p, err := DecodeAuthSys(got.Cred.Body)
	if err != nil || !reflect.DeepEqual(p, sys) {
		t.Errorf("AUTH_SYS %+v, %v", p, err)
	}

	// Encode fills in RPC version 2.
	e.Reset()
	CallHeader{XID: 1, Prog: 2}.Encode(&e)
	if want := be(1, Call, 2, 2, 0, 0, 0, 0, 0, 0); !bytes.Equal(e.Bytes(), want) {
		t.Errorf("zero header %x", e.Bytes())
	}
}

func TestDecodeCallErrors(t *testing.T) {
	long := be(1, Call, 2, 100003, 3, 0, AuthSys, 404)
	long = append(long, make([]byte, 404)...)
	long = append(long, be(0, 0)...)
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"Reply", be(1, Reply, 0, 0, 0, 0), ErrNotCall},
		{"Truncated", be(1, Call, 2, 100003, 3, 0, 0), xdr.ErrShort},
		{"CredTooLong", long, xdr.ErrTooLong},
		{"BadPadding", append(be(1, Call, 2, 100003, 3, 0, AuthSys, 1), 7, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0), xdr.ErrPadding},
		{"Empty", nil, xdr.ErrShort},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeCall(xdr.NewDecoder(tt.in)); !errors.Is(err, tt.want) {
				t.Errorf("err %v, want %v", err, tt.want)
			}
		})
	}
	// A wrong RPC version decodes: the server answers RPC_MISMATCH.
	h, err := DecodeCall(xdr.NewDecoder(be(1, Call, 3, 100003, 3, 0, 0, 0, 0, 0)))
	if err != nil || h.RPCVers != 3 {
		t.Errorf("rpcvers 3: %+v, %v", h, err)
	}
}

func TestDecodeAuthSys(t *testing.T) {
	enc := func(p AuthSysParms) []byte { return p.Credential().Body }
	good := AuthSysParms{Stamp: 9, MachineName: "m", UID: 0, GID: 0, GIDs: make([]uint32, 16)}
	if p, err := DecodeAuthSys(enc(good)); err != nil || !reflect.DeepEqual(p, good) {
		t.Fatalf("16 gids: %+v %v", p, err)
	}
	if n := len(enc(AuthSysParms{MachineName: strings.Repeat("x", 255), GIDs: make([]uint32, 16)})); n != 340 {
		t.Errorf("largest body %d bytes, want 340 (reference §1.3)", n)
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"Empty", nil},
		{"NameTooLong", be(0, 256)},
		{"TooManyGids", append(be(0, 0, 1, 1, 17), make([]byte, 68)...)},
		{"Trailing", append(enc(good), 0, 0, 0, 0)},
		{"Truncated", enc(good)[:20]},
		{"BadPadding", be(0, 1, 0x61000001, 0, 0, 0)},
		{"GidsShort", be(0, 0, 1, 1, 2, 5)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := DecodeAuthSys(tt.in); !errors.Is(err, ErrBadAuthSys) {
				t.Errorf("got %+v, %v; want ErrBadAuthSys", p, err)
			}
		})
	}
	// Encode cuts what the wire cannot carry.
	cut := AuthSysParms{MachineName: strings.Repeat("y", 300), GIDs: make([]uint32, 20)}
	p, err := DecodeAuthSys(enc(cut))
	if err != nil || len(p.MachineName) != 255 || len(p.GIDs) != 16 {
		t.Errorf("cut: name %d gids %d, %v", len(p.MachineName), len(p.GIDs), err)
	}
}

func TestReplies(t *testing.T) {
	tests := []struct {
		name   string
		encode func(e *xdr.Encoder)
		want   []byte
		err    *ReplyError
	}{
		{"Success", func(e *xdr.Encoder) { EncodeAccepted(e, 7, Success) },
			be(7, Reply, MsgAccepted, AuthNone, 0, 0), nil},
		{"ProgUnavail", func(e *xdr.Encoder) { EncodeAccepted(e, 7, ProgUnavail) },
			be(7, 1, 0, 0, 0, 1), &ReplyError{Accept: ProgUnavail}},
		{"ProgMismatch", func(e *xdr.Encoder) { EncodeProgMismatch(e, 7, 3, 3) },
			be(7, 1, 0, 0, 0, 2, 3, 3), &ReplyError{Accept: ProgMismatch, Low: 3, High: 3}},
		{"ProcUnavail", func(e *xdr.Encoder) { EncodeAccepted(e, 7, ProcUnavail) },
			be(7, 1, 0, 0, 0, 3), &ReplyError{Accept: ProcUnavail}},
		{"GarbageArgs", func(e *xdr.Encoder) { EncodeAccepted(e, 7, GarbageArgs) },
			be(7, 1, 0, 0, 0, 4), &ReplyError{Accept: GarbageArgs}},
		{"SystemErr", func(e *xdr.Encoder) { EncodeAccepted(e, 7, SystemErr) },
			be(7, 1, 0, 0, 0, 5), &ReplyError{Accept: SystemErr}},
		{"RPCMismatch", func(e *xdr.Encoder) { EncodeRPCMismatch(e, 7) },
			be(7, 1, 1, 0, 2, 2), &ReplyError{Denied: true, Reject: RPCMismatch, Low: 2, High: 2}},
		{"AuthTooWeak", func(e *xdr.Encoder) { EncodeAuthError(e, 7, AuthTooWeak) },
			be(7, 1, 1, 1, 5), &ReplyError{Denied: true, Reject: AuthError, Auth: AuthTooWeak}},
		{"AuthBadCred", func(e *xdr.Encoder) { EncodeAuthError(e, 7, AuthBadCred) },
			be(7, 1, 1, 1, 1), &ReplyError{Denied: true, Reject: AuthError, Auth: AuthBadCred}},
	}
	sizes := map[string]int{"Success": 24, "ProgMismatch": 32, "RPCMismatch": 24, "AuthTooWeak": 20}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e xdr.Encoder
			tt.encode(&e)
			if !bytes.Equal(e.Bytes(), tt.want) {
				t.Fatalf("encoded %x, want %x", e.Bytes(), tt.want)
			}
			if n, ok := sizes[tt.name]; ok && e.Len() != n {
				t.Errorf("%d bytes, want %d (reference §1.1)", e.Len(), n)
			}
			d := xdr.NewDecoder(e.Bytes())
			xid, err := DecodeReply(d)
			if xid != 7 {
				t.Errorf("xid %d", xid)
			}
			if tt.err == nil {
				if err != nil || d.Done() != nil {
					t.Errorf("DecodeReply: %v, %v", err, d.Done())
				}
				return
			}
			var re *ReplyError
			if !errors.As(err, &re) || *re != *tt.err {
				t.Errorf("DecodeReply error %#v, want %#v", err, tt.err)
			}
			if re != nil && re.Error() == "" {
				t.Error("empty error text")
			}
		})
	}
	for name, in := range map[string][]byte{
		"Call":          be(7, Call, 0),
		"BadReplyStat":  be(7, Reply, 2),
		"Truncated":     be(7, Reply, 0, 0),
		"ShortMismatch": be(7, Reply, 0, 0, 0, 2, 3),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeReply(xdr.NewDecoder(in))
			var re *ReplyError
			if err == nil || errors.As(err, &re) {
				t.Errorf("err %v, want a decode error", err)
			}
		})
	}
}

func TestStrings(t *testing.T) {
	for _, s := range []interface{ String() string }{Success, ProgUnavail, ProgMismatch, ProcUnavail, GarbageArgs,
		SystemErr, AcceptStat(99), AuthOK, AuthBadCred, AuthRejectedCred, AuthBadVerf, AuthRejectedVerf, AuthTooWeak, AuthStat(99)} {
		if s.String() == "" {
			t.Errorf("empty String for %#v", s)
		}
	}
}

// FuzzDecodeCall decodes arbitrary bytes as a call header; what decodes
// must encode back to the same bytes.
func FuzzDecodeCall(f *testing.F) {
	var e xdr.Encoder
	CallHeader{XID: 1, Prog: ProgNFS, Vers: 3, Proc: 4,
		Cred: AuthSysParms{MachineName: "a", UID: 1, GIDs: []uint32{1}}.Credential()}.Encode(&e)
	f.Add(e.Bytes())
	f.Add(be(1, Call, 2, 100000, 2, 3, 0, 0, 0, 0, 1, 2, 3))
	f.Add(be(1, Call, 3, 100000, 2, 3, 6, 3, 0x01020300, 0, 0))
	f.Add(be(1, Reply))
	f.Fuzz(func(t *testing.T, in []byte) {
		d := xdr.NewDecoder(in)
		h, err := DecodeCall(d)
		if err != nil {
			return
		}
		if h.RPCVers == 0 {
			return // Encode writes 2 for a zero version
		}
		var e xdr.Encoder
		h.Encode(&e)
		if !bytes.Equal(e.Bytes(), in[:d.Offset()]) {
			t.Fatalf("re-encoded %x, decoded from %x", e.Bytes(), in[:d.Offset()])
		}
		if len(h.Cred.Body) > MaxAuthBody || len(h.Verf.Body) > MaxAuthBody {
			t.Fatalf("auth body over %d bytes", MaxAuthBody)
		}
	})
}

// FuzzDecodeAuthSys checks the round trip both ways: a body that decodes
// re-encodes to itself, and parameters built from the input survive
// encode and decode.
func FuzzDecodeAuthSys(f *testing.F) {
	f.Add(AuthSysParms{Stamp: 5, MachineName: "mail1", UID: 1000, GID: 1000, GIDs: []uint32{10, 20}}.Credential().Body,
		uint32(1), "name", uint32(2), uint32(3), uint8(4))
	f.Add([]byte{}, uint32(0), "", uint32(0), uint32(0), uint8(0))
	f.Add(be(0, 3, 0x61626300, 1, 1, 17), uint32(0), strings.Repeat("n", 300), uint32(0), uint32(0), uint8(20))
	f.Fuzz(func(t *testing.T, body []byte, stamp uint32, name string, uid, gid uint32, ngids uint8) {
		if p, err := DecodeAuthSys(body); err == nil {
			if len(p.MachineName) > MaxMachineName || len(p.GIDs) > MaxGids {
				t.Fatalf("bounds exceeded: %+v", p)
			}
			if got := p.Credential().Body; !bytes.Equal(got, body) {
				t.Fatalf("re-encoded %x, want %x", got, body)
			}
		} else if !errors.Is(err, ErrBadAuthSys) {
			t.Fatalf("error %v does not wrap ErrBadAuthSys", err)
		}

		in := AuthSysParms{Stamp: stamp, MachineName: name, UID: uid, GID: gid}
		for i := range int(ngids) {
			in.GIDs = append(in.GIDs, uint32(i)*uid)
		}
		cred := in.Credential()
		if cred.Flavor != AuthSys || len(cred.Body) > MaxAuthBody {
			t.Fatalf("credential flavor %d, %d bytes", cred.Flavor, len(cred.Body))
		}
		out, err := DecodeAuthSys(cred.Body)
		if err != nil {
			t.Fatalf("decode of encoded %+v: %v", in, err)
		}
		want := in
		if len(want.MachineName) > MaxMachineName {
			want.MachineName = want.MachineName[:MaxMachineName]
		}
		if len(want.GIDs) > MaxGids {
			want.GIDs = want.GIDs[:MaxGids]
		}
		if len(want.GIDs) == 0 {
			want.GIDs = nil
		}
		if !reflect.DeepEqual(out, want) {
			t.Fatalf("round trip %+v, want %+v", out, want)
		}
	})
}

// FuzzDecodeReply decodes arbitrary bytes as a reply header: no panic, the
// XID is the first word, errors are either a *ReplyError or a decode error,
// and a ReplyError re-encodes to the bytes it came from when its verifier
// was AUTH_NONE.
func FuzzDecodeReply(f *testing.F) {
	var e xdr.Encoder
	EncodeProgMismatch(&e, 9, 3, 3)
	f.Add(e.Bytes())
	f.Add(be(1, Reply, 0, 0, 0, 0, 0xabcd))
	f.Add(be(1, Reply, 1, 0, 2, 2))
	f.Add(be(1, Reply, 1, 1, 5))
	f.Add(be(1, Reply, 0, 1, 4, 0xdeadbeef, 3))
	f.Add(be(1, Reply, 1, 7))
	f.Fuzz(func(t *testing.T, in []byte) {
		d := xdr.NewDecoder(in)
		xid, err := DecodeReply(d)
		if len(in) >= 4 && xid != binary.BigEndian.Uint32(in) {
			t.Fatalf("xid %x from %x", xid, in[:4])
		}
		var re *ReplyError
		if !errors.As(err, &re) {
			return
		}
		_ = re.Error()
		if binary.BigEndian.Uint32(in[8:]) == MsgAccepted &&
			(binary.BigEndian.Uint32(in[12:]) != AuthNone || binary.BigEndian.Uint32(in[16:]) != 0) {
			return // the encoders write an empty AUTH_NONE verifier only
		}
		var e xdr.Encoder
		switch {
		case re.Denied && re.Reject == RPCMismatch:
			e.Uint32(xid)
			e.Uint32(Reply)
			e.Uint32(MsgDenied)
			e.Uint32(uint32(RPCMismatch))
			e.Uint32(re.Low)
			e.Uint32(re.High)
		case re.Denied && re.Reject == AuthError:
			EncodeAuthError(&e, xid, re.Auth)
		case re.Denied:
			e.Uint32(xid)
			e.Uint32(Reply)
			e.Uint32(MsgDenied)
			e.Uint32(uint32(re.Reject))
		case re.Accept == ProgMismatch:
			EncodeProgMismatch(&e, xid, re.Low, re.High)
		default:
			EncodeAccepted(&e, xid, re.Accept)
		}
		if e.Len() > len(in) || !bytes.Equal(e.Bytes(), in[:e.Len()]) || d.Offset() != e.Len() {
			t.Fatalf("re-encoded %x, input %x (consumed %d)", e.Bytes(), in, d.Offset())
		}
	})
}
