package nfsd

import (
	"fmt"
	"net/netip"
	"os/user"
	"strconv"
	"strings"

	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/maildirfs"
)

// freebsdOptions are the FreeBSD exports(5) flags the parser knows, for the
// "unknown option" message.
var freebsdOptions = map[string]bool{
	"ro": true, "o": true, "alldirs": true, "quiet": true, "maproot": true, "r": true,
	"mapall": true, "network": true, "mask": true, "sec": true, "compress": true,
}

// optPart is one comma-separated part of an option word, with its position.
type optPart struct {
	text string
	pos  Pos
}

// splitOptions splits "-a,b=c" (after the dash) into parts with positions.
func splitOptions(text string, pos Pos) []optPart {
	var out []optPart
	off := 0
	for _, s := range strings.Split(text, ",") {
		out = append(out, optPart{text: s, pos: pos.add(off)})
		off += len(s) + 1
	}
	return out
}

// freebsdLine parses the part of a FreeBSD line after its directories.
func (p *parser) freebsdLine(linePos Pos, toks []token) (*Rule, bool) {
	r := &Rule{Pos: linePos, Dialect: FreeBSD, Squash: DefaultSquash(), compressPos: linePos}
	var compressTok *optPart
	var (
		netTok, maskTok *optPart
		maskOpt         Pos // where -mask is, for "-mask without -network"
		mapTok          *optPart
		hosts           []Client
		hostTok         *token
		ok              = true
	)
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.literal || !strings.HasPrefix(t.text, "-") {
			c, good := p.parseHostClient(t, t.text)
			ok = ok && good
			if good {
				hosts = append(hosts, c)
				if hostTok == nil {
					hostTok = &toks[i]
				}
			}
			continue
		}
		parts := splitOptions(t.text[1:], t.pos.add(1))
		for j, part := range parts {
			name, val, hasVal := strings.Cut(part.text, "=")
			valPos := part.pos.add(len(name) + 1)
			value := func() (optPart, bool) {
				if hasVal {
					return optPart{text: val, pos: valPos}, true
				}
				if j == len(parts)-1 && i+1 < len(toks) && !strings.HasPrefix(toks[i+1].text, "-") {
					i++
					return optPart{text: toks[i].text, pos: toks[i].pos}, true
				}
				return optPart{pos: part.pos.add(len(name))}, false
			}
			switch name {
			case "ro", "o":
				r.ReadOnly = true
			case "alldirs":
				r.AllDirs = true
			case "quiet":
			case "maproot", "r", "mapall":
				v, has := value()
				if !has || v.text == "" {
					p.errorf(v.pos, "-%s needs a user like 0, nobody or uid:gid:gid like 1000:1000, got nothing", name)
					return nil, false
				}
				if mapTok != nil {
					p.errorf(part.pos.add(-1), "-%s given after %s; use one -maproot or -mapall per line", name, mapTok.text)
					return nil, false
				}
				mapTok = &optPart{text: "-" + name, pos: part.pos}
				cred, good := p.parseCred(name, v)
				if !good {
					return nil, false
				}
				r.Squash.Anon = cred
				if name == "mapall" {
					r.Squash.Mode = SquashAll
				}
			case "network":
				v, has := value()
				if netTok != nil {
					p.errorf(part.pos.add(-1), "only one -network per line; the first is at %s", netTok.pos)
					return nil, false
				}
				if !has || v.text == "" {
					p.errorf(v.pos, "-network needs a network like 10.1.2.0/24, got nothing")
					return nil, false
				}
				netTok = &v
			case "mask":
				v, has := value()
				if maskTok != nil {
					p.errorf(part.pos.add(-1), "only one -mask per line; the first is at %s", maskTok.pos)
					return nil, false
				}
				if !has {
					p.errorf(v.pos, "-mask needs a dotted netmask like 255.255.255.0, got nothing")
					return nil, false
				}
				maskTok, maskOpt = &v, part.pos.add(-1)
			case "sec":
				v, has := value()
				if !has {
					p.errorf(v.pos, "-sec needs flavors like sys, got nothing")
					return nil, false
				}
				if !p.checkFlavors("-sec", v) {
					return nil, false
				}
			case "compress":
				v, has := value()
				if compressTok != nil {
					p.errorf(part.pos.add(-1), "only one -compress per line; the first is at %s", compressTok.pos)
					return nil, false
				}
				if !p.checkCompress("-compress", v, has) {
					return nil, false
				}
				compressTok = &optPart{text: "-compress", pos: part.pos.add(-1)}
				r.compress, r.compressPos = v.text, compressTok.pos
			case "public", "webnfs", "index", "tls", "tlscert", "tlscertuser":
				p.errorf(part.pos.add(-1), "-%s is not supported by this server", name)
				return nil, false
			default:
				if name == "" {
					p.errorf(part.pos, "empty option; options look like -ro or -maproot=0:0")
				} else {
					p.errorf(part.pos.add(-1), "unknown FreeBSD export option -%s; known: -%s", name, strings.Join(sortedKeys(freebsdOptions), ", -"))
				}
				return nil, false
			}
		}
	}
	if !ok {
		return nil, false
	}
	if maskTok != nil && netTok == nil {
		p.errorf(maskOpt, "-mask needs a -network on the same line")
		return nil, false
	}
	if netTok != nil {
		if hostTok != nil {
			p.errorf(hostTok.pos, "a line lists hosts or one -network, not both; write a line for each")
			return nil, false
		}
		pfx, good := p.parseNetwork(*netTok, maskTok)
		if !good {
			return nil, false
		}
		hosts = []Client{{Kind: ClientNet, Net: pfx}}
	}
	r.Clients = hosts
	return r, true
}

// parseNetwork parses a -network value with an optional -mask.
func (p *parser) parseNetwork(net optPart, mask *optPart) (netip.Prefix, bool) {
	addrText, lenText, hasLen := strings.Cut(net.text, "/")
	if strings.Contains(addrText, "%") {
		p.errorf(net.pos, "scoped IPv6 networks are not supported, got %q", net.text)
		return netip.Prefix{}, false
	}
	a, err := netip.ParseAddr(addrText)
	if plain, ok := unbracketIPv6(net.text); err != nil && ok {
		p.errorf(net.pos, "-network %s: IPv6 networks are written without brackets in exports; write -network %s", net.text, plain)
		return netip.Prefix{}, false
	}
	if err != nil {
		// FreeBSD partial network: "131.104.48" is 131.104.48.0.
		var msg string
		a, msg = parsePartialIPv4(addrText)
		if msg != "" {
			p.errorf(net.pos, "-network %s: %s", net.text, msg)
			return netip.Prefix{}, false
		}
		if !a.IsValid() {
			p.errorf(net.pos, "-network needs a network like 10.1.2.0/24 or 10.1.2, got %q", net.text)
			return netip.Prefix{}, false
		}
	}
	var bits int
	switch {
	case hasLen && mask != nil:
		p.errorf(mask.pos, "-network %s already has a prefix length; drop -mask", net.text)
		return netip.Prefix{}, false
	case hasLen:
		n, good := parseDecimal(lenText, a.BitLen())
		if !good {
			p.errorf(net.pos.add(len(addrText)+1), "-network prefix length must be 0 to %d, got %q", a.BitLen(), lenText)
			return netip.Prefix{}, false
		}
		bits = n
		if a.Is4In6() {
			// ::ffff:a.b.c.d/len: callers are unmapped, so match as
			// IPv4; the first 96 bits are the mapping prefix.
			if n < 96 {
				p.errorf(net.pos.add(len(addrText)+1), "-network %s is IPv4-mapped and needs a prefix length of at least 96 (the mapping prefix)", net.text)
				return netip.Prefix{}, false
			}
			a, bits = a.Unmap(), n-96
		}
	case mask != nil:
		a = a.Unmap()
		if !a.Is4() {
			p.errorf(mask.pos, "-mask is for IPv4 networks; write IPv6 networks as addr/len")
			return netip.Prefix{}, false
		}
		n, good := parseDottedMask(mask.text)
		if !good {
			p.errorf(mask.pos, "-mask needs a dotted netmask like 255.255.255.0, got %q", mask.text)
			return netip.Prefix{}, false
		}
		bits = n
	case !a.Is4():
		p.errorf(net.pos, "-network %s needs a prefix length like %s/64: only IPv4 networks have a class mask", net.text, addrText)
		return netip.Prefix{}, false
	default:
		// FreeBSD exports(5): without -mask (or /len) the mask is the
		// class mask of the address; mountd's get_net takes it from
		// the class of the padded address, so 10.1.2.0 and 10.1 both
		// mean 10.0.0.0/8. It is easily wider than meant: warn.
		class, n := classOf(a)
		if n == 0 {
			p.errorf(net.pos, "-network %s is a class %s address, which has no class mask; give -mask or a /len", net.text, class)
			return netip.Prefix{}, false
		}
		bits = n
		pfx := netip.PrefixFrom(a, bits).Masked()
		p.warnf(net.pos, "-network %s has no -mask or /len, so it gets the class %s mask (FreeBSD exports(5)): %s; write -network %s to say so, or give the mask you mean (-mask or /len)", net.text, class, pfx, pfx)
	}
	return netip.PrefixFrom(a, bits).Masked(), true
}

// classOf returns the class of an IPv4 address (RFC 791) and its class
// mask length: A 8, B 16, C 24; D and E have none (0).
func classOf(a netip.Addr) (string, int) {
	switch b := a.As4()[0]; {
	case b < 128:
		return "A", 8
	case b < 192:
		return "B", 16
	case b < 224:
		return "C", 24
	case b < 240:
		return "D", 0
	}
	return "E", 0
}

// parsePartialIPv4 parses 1 to 3 dotted decimal octets ("10", "10.1",
// "10.1.2") as a network address with zero host bytes, as FreeBSD mountd
// does (inet_network, then inet_makeaddr with host part 0). The invalid
// Addr means s is no partial network; msg is set for the forms that
// inet_makeaddr would place elsewhere than written ("192" is 0.192.0.0
// there, "0.5" is 5.0.0.0): those are refused.
func parsePartialIPv4(s string) (a netip.Addr, msg string) {
	parts := strings.Split(s, ".")
	if len(parts) < 1 || len(parts) > 3 {
		return netip.Addr{}, ""
	}
	var b [4]byte
	for i, s := range parts {
		n, ok := parseDecimal(s, 255)
		if !ok || len(s) > 3 {
			return netip.Addr{}, ""
		}
		b[i] = byte(n)
	}
	switch {
	case len(parts) == 1 && b[0] >= 128:
		return netip.Addr{}, fmt.Sprintf("FreeBSD mountd reads a one-number network of 128 or more as 0.%d.0.0; write the network in full, like %d.0.0.0/8", b[0], b[0])
	case len(parts) > 1 && b[0] == 0:
		return netip.Addr{}, "FreeBSD mountd moves a partial network that starts with 0 to the left; write the network in full with a /len"
	}
	return netip.AddrFrom4(b), ""
}

// knownFlavors are the security flavors exports files name (FreeBSD
// exports(5) -sec, Linux exports(5) sec=); served marks those this server
// serves.
var knownFlavors = map[string]bool{
	"sys": true, "none": true,
	"krb5": false, "krb5i": false, "krb5p": false,
}

// checkFlavors checks a colon-separated flavor list, of which this server
// serves only sys (and none). A list that also allows sys or none loads
// with a warning for each other flavor (its clients use AUTH_SYS); a list
// without either is an error, since serving AUTH_SYS would be weaker than
// the line asks. An unknown name is an error.
func (p *parser) checkFlavors(opt string, v optPart) bool {
	type flavor struct {
		name string
		pos  Pos
	}
	var unserved []flavor
	sys := false
	off := 0
	for _, f := range strings.Split(v.text, ":") {
		served, known := knownFlavors[f]
		switch {
		case !known:
			p.errorf(v.pos.add(off), "%s flavor %q is unknown; flavors are sys, none, krb5, krb5i and krb5p", opt, f)
			return false
		case served:
			sys = true
		default:
			unserved = append(unserved, flavor{f, v.pos.add(off)})
		}
		off += len(f) + 1
	}
	for _, f := range unserved {
		if !sys {
			p.errorf(f.pos, "%s flavor %q is not supported; this server speaks sys (AUTH_SYS)", opt, f.name)
			return false
		}
		p.warnf(f.pos, "%s flavor %q is not served: this server speaks sys (AUTH_SYS), which the list also allows, so clients use that", opt, f.name)
	}
	return true
}

// parseCred parses a -maproot/-mapall value: "user" (name or number, with
// the user's groups from the user database), "user:" (no groups) or
// "user:group:group..." (first group is the primary gid).
func (p *parser) parseCred(opt string, v optPart) (maildirfs.Cred, bool) {
	name, groups, hasGroups := strings.Cut(v.text, ":")
	if !hasGroups {
		lookup := p.opts.LookupUser
		if lookup == nil {
			lookup = lookupLocalUser
		}
		c, err := lookup(name)
		if err != nil {
			p.errorf(v.pos, "-%s user %q: %v; write uid:gid like 1000:1000 to skip the lookup", opt, name, err)
			return maildirfs.Cred{}, false
		}
		return c, true
	}
	var c maildirfs.Cred
	if uid, ok := parseID(name); ok {
		c.UID = uid
	} else {
		lookup := p.opts.LookupUser
		if lookup == nil {
			lookup = lookupLocalUser
		}
		u, err := lookup(name)
		if err != nil {
			p.errorf(v.pos, "-%s user %q: %v; write a number", opt, name, err)
			return maildirfs.Cred{}, false
		}
		c.UID = u.UID
	}
	if groups == "" {
		// "user:" means the uid with no groups (FreeBSD exports(5)):
		// nogroup as the primary gid, as mountd gives it.
		c.GID = bsdNoGroup
		return c, true
	}
	off := len(name) + 1
	var gids []uint32
	for _, g := range strings.Split(groups, ":") {
		gid, ok := parseID(g)
		if !ok {
			grp, err := user.LookupGroup(g)
			if err == nil {
				var n uint64
				n, err = strconv.ParseUint(grp.Gid, 10, 32)
				gid = uint32(n)
			}
			if err != nil || g == "" {
				p.errorf(v.pos.add(off), "-%s group %q: want a gid number or a known group name", opt, g)
				return maildirfs.Cred{}, false
			}
		}
		gids = append(gids, gid)
		off += len(g) + 1
	}
	if len(gids) > 1+rpc.MaxGids {
		p.errorf(v.pos, "-%s lists %d groups; AUTH_SYS carries at most %d besides the primary one", opt, len(gids), rpc.MaxGids)
		return maildirfs.Cred{}, false
	}
	c.GID = gids[0]
	if len(gids) > 1 {
		c.GIDs = gids[1:]
	}
	return c, true
}

// lookupLocalUser resolves a user name or number with its groups from the
// local user database (os/user).
func lookupLocalUser(name string) (maildirfs.Cred, error) {
	var (
		u   *user.User
		err error
	)
	if _, isNum := parseUint32(name); isNum {
		u, err = user.LookupId(name)
	} else {
		u, err = user.Lookup(name)
	}
	if err != nil {
		return maildirfs.Cred{}, err
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return maildirfs.Cred{}, fmt.Errorf("user %q has a non-numeric uid or gid", name)
	}
	c := maildirfs.Cred{UID: uint32(uid), GID: uint32(gid)}
	if ids, err := u.GroupIds(); err == nil {
		for _, s := range ids {
			g, err := strconv.ParseUint(s, 10, 32)
			if err != nil || uint32(g) == c.GID {
				continue
			}
			if len(c.GIDs) == rpc.MaxGids {
				break
			}
			c.GIDs = append(c.GIDs, uint32(g))
		}
	}
	return c, nil
}
