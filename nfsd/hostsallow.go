package nfsd

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// This file parses and evaluates hosts_access(5) files (reference §6): the
// classic pair hosts.allow / hosts.deny and FreeBSD's single hosts.allow
// with ": allow" / ": deny" options (hosts_options(5)).
//
// What is matched: only the caller's numeric address (and, for
// "daemon@pattern", the server address the call arrived on). No name is
// looked up on the request path; host names in rules are resolved when the
// file is loaded. Hence the patterns that need a caller's name (".domain",
// KNOWN, UNKNOWN, PARANOID, @netgroup, user@host) are refused with an error
// instead of silently never matching, and LOCAL (a host name without a
// dot) matches loopback callers, the only ones mailnfsd knows a dotless
// name for ("localhost").

// MaxHostsFile bounds a hosts_access file.
const MaxHostsFile = 1 << 20

// Daemon names mailnfsd answers to in hosts_access files.
const (
	DaemonRpcbind = "rpcbind" // the portmapper (also "portmap")
	DaemonPortmap = "portmap"
	DaemonMountd  = "mountd"
	DaemonNFSD    = "nfsd"
)

// HostsVerdict is what a matching rule decides.
type HostsVerdict uint8

// Verdicts.
const (
	HostsAllow HostsVerdict = iota + 1
	HostsDeny
)

// String returns "allow" or "deny".
func (v HostsVerdict) String() string {
	if v == HostsDeny {
		return "deny"
	}
	return "allow"
}

// HostsRule is one line of a hosts_access file.
type HostsRule struct {
	// Pos is where the line starts.
	Pos Pos
	// Verdict is the ": allow" / ": deny" option, or the file's default
	// (allow in hosts.allow, deny in hosts.deny).
	Verdict HostsVerdict
	// Text is the logical line as written, for logs.
	Text string

	daemons *hostsList
	clients *hostsList
}

// hostsList is "items [EXCEPT list]".
type hostsList struct {
	items  []hostsPattern
	except *hostsList
}

type patKind uint8

const (
	patAll patKind = iota
	patLocal
	patNet   // address, a.b.c. prefix, net/mask, CIDR, [v6]/len
	patAddrs // host name resolved at load
	patName  // daemon name
)

// hostsPattern is one word of a daemon or client list.
type hostsPattern struct {
	kind  patKind
	net   netip.Prefix
	addrs []netip.Addr
	name  string // daemon name, lower case
	// at, for a daemon pattern "name@host", matches the server address.
	at *hostsPattern
}

func (p *hostsPattern) matchAddr(a netip.Addr) bool {
	switch p.kind {
	case patAll:
		return true
	case patLocal:
		return a.IsLoopback()
	case patNet:
		return p.net.Contains(a)
	case patAddrs:
		for _, x := range p.addrs {
			if x == a {
				return true
			}
		}
	}
	return false
}

func (p *hostsPattern) matchDaemon(names []string, server netip.Addr) bool {
	ok := p.kind == patAll
	if p.kind == patName {
		for _, n := range names {
			if n == p.name {
				ok = true
			}
		}
	}
	if ok && p.at != nil {
		return p.at.matchAddr(server)
	}
	return ok
}

func (l *hostsList) match(f func(*hostsPattern) bool) bool {
	for i := range l.items {
		if f(&l.items[i]) {
			return l.except == nil || !l.except.match(f)
		}
	}
	return false
}

// names reports whether the positive part of a daemon list names d.
func (l *hostsList) names(d string) bool {
	for _, p := range l.items {
		if p.kind == patName && p.name == d {
			return true
		}
	}
	return false
}

// HostsAccess is a loaded pair of hosts_access files: the rules of
// hosts.allow followed by those of hosts.deny, searched in order; the first
// rule whose daemon list and client list match decides, and no match
// grants. It is immutable.
type HostsAccess struct {
	// Files are the files the rules came from (for logs), missing ones left
	// out.
	Files []string
	Rules []*HostsRule
}

// HostsOptions adjust hosts_access parsing.
type HostsOptions struct {
	// LookupHost resolves host names in client lists at load time. Nil
	// means host names are an error (write addresses).
	LookupHost func(name string) ([]netip.Addr, error)
}

// Names reports whether a rule explicitly names daemon d (ALL does not
// count). MOUNT and NFS are checked only when their daemon is named.
func (h *HostsAccess) Names(d string) bool {
	if h == nil {
		return false
	}
	for _, r := range h.Rules {
		if r.daemons.names(d) {
			return true
		}
	}
	return false
}

// Check returns the verdict for a caller at client reaching the server at
// server under any of the daemon names (lower case), and the rule that
// decided (nil: no rule matched, allowed by default).
func (h *HostsAccess) Check(names []string, server, client netip.Addr) (HostsVerdict, *HostsRule) {
	if h == nil {
		return HostsAllow, nil
	}
	// Link-local addresses arrive with their zone (fe80::1%eth0); a prefix
	// never contains a zoned address, so a [fe80::]/10 rule would never
	// match and a deny would fail open. Patterns carry no zone.
	client, server = client.Unmap().WithZone(""), server.Unmap().WithZone("")
	for _, r := range h.Rules {
		if r.daemons.match(func(p *hostsPattern) bool { return p.matchDaemon(names, server) }) &&
			r.clients.match(func(p *hostsPattern) bool { return p.matchAddr(client) }) {
			return r.Verdict, r
		}
	}
	return HostsAllow, nil
}

// LoadHostsAccess reads hosts.allow at allowPath (required) and the
// optional hosts.deny at denyPath (empty or missing: no deny file).
func LoadHostsAccess(allowPath, denyPath string, opts *HostsOptions) (*HostsAccess, error) {
	h := &HostsAccess{}
	var errs []error
	for _, f := range []struct {
		path     string
		verdict  HostsVerdict
		optional bool
	}{{allowPath, HostsAllow, false}, {denyPath, HostsDeny, true}} {
		if f.path == "" {
			continue
		}
		data, err := readBounded(f.path, "file", MaxHostsFile)
		if f.optional && errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rules, err := ParseHostsAccess(f.path, data, f.verdict, opts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		h.Files = append(h.Files, f.path)
		h.Rules = append(h.Rules, rules...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return h, nil
}

// readBounded reads a configuration file of at most limit bytes; what
// names it in the error for a larger one ("exports file").
func readBounded(path, what string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s: %s is %d bytes, more than the %d allowed", path, what, st.Size(), limit)
	}
	data := make([]byte, st.Size())
	if _, err := f.ReadAt(data, 0); err != nil && st.Size() > 0 {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}

// hostsChar is one byte of a logical line with its position.
type hostsChar struct {
	c   byte
	pos Pos
}

// ParseHostsAccess parses one hosts_access file; def is the verdict of a
// rule without an allow/deny option (HostsAllow for hosts.allow, HostsDeny
// for hosts.deny). name is used in error positions. On error it returns
// ParseErrors and no rules.
//
// Syntax: "daemon_list : client_list [: option ...]". A backslash before
// the newline continues a line; a line whose first non-blank is "#" is a
// comment, and so is the rest of a line from a "#" after a blank. Lists
// are separated by blanks and commas. Options: "allow" or "deny" (last);
// severity, banners, nice, keepalive, linger, umask, user, setenv, rfc931
// and spawn are accepted and ignored; twist is refused.
func ParseHostsAccess(name string, data []byte, def HostsVerdict, opts *HostsOptions) ([]*HostsRule, error) {
	if opts == nil {
		opts = &HostsOptions{}
	}
	p := &hostsParser{opts: opts}
	if len(data) > MaxHostsFile {
		p.errorf(Pos{File: name, Line: 1, Col: 1}, "file is %d bytes, more than the %d allowed", len(data), MaxHostsFile)
		return nil, p.errs
	}
	var rules []*HostsRule
	for _, line := range splitHostsLines(name, data) {
		if len(p.errs) >= maxParseErrors {
			break
		}
		if r := p.rule(line, def); r != nil {
			rules = append(rules, r)
		}
	}
	if len(p.errs) > 0 {
		if len(p.errs) > maxParseErrors {
			p.errs = p.errs[:maxParseErrors]
		}
		return nil, p.errs
	}
	return rules, nil
}

// splitHostsLines joins continuation lines and drops comments and blank
// lines.
func splitHostsLines(name string, data []byte) [][]hostsChar {
	var (
		lines [][]hostsChar
		cur   []hostsChar
		line  = 1
		col   = 1
	)
	flush := func() {
		// Comment: first non-blank is '#', or '#' after a blank.
		for i, hc := range cur {
			if hc.c == '#' && (i == 0 || isHostsBlank(cur[i-1].c)) {
				cur = cur[:i]
				break
			}
		}
		for _, hc := range cur {
			if !isHostsBlank(hc.c) {
				lines = append(lines, cur)
				break
			}
		}
		cur = nil
	}
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case c == '\n':
			flush()
			line, col = line+1, 1
			continue
		case c == '\\' && (hasPrefix(data[i+1:], "\n") || hasPrefix(data[i+1:], "\r\n")):
			if data[i+1] == '\r' {
				i++
			}
			i++
			cur = append(cur, hostsChar{' ', Pos{File: name, Line: line, Col: col}})
			line, col = line+1, 1
			continue
		}
		cur = append(cur, hostsChar{c, Pos{File: name, Line: line, Col: col}})
		col++
	}
	flush()
	return lines
}

func isHostsBlank(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'
}

type hostsParser struct {
	opts *HostsOptions
	errs ParseErrors
}

func (p *hostsParser) errorf(pos Pos, format string, args ...any) {
	p.errs = append(p.errs, &ParseError{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// hostsWord is one word of a list with its position.
type hostsWord struct {
	text string
	pos  Pos
}

// splitFields splits a line at ':' outside [brackets]; a backslash escapes
// the next byte (needed for ':' in options).
func splitFields(line []hostsChar) [][]hostsChar {
	var (
		fields  [][]hostsChar
		cur     []hostsChar
		bracket bool
	)
	for i := 0; i < len(line); i++ {
		hc := line[i]
		switch {
		case hc.c == '\\' && i+1 < len(line):
			i++
			cur = append(cur, line[i])
			continue
		case hc.c == '[':
			bracket = true
		case hc.c == ']':
			bracket = false
		case hc.c == ':' && !bracket:
			fields = append(fields, cur)
			cur = nil
			continue
		}
		cur = append(cur, hc)
	}
	return append(fields, cur)
}

// hostsWords splits a field at blanks and commas.
func hostsWords(field []hostsChar) []hostsWord {
	var (
		out []hostsWord
		b   []byte
		pos Pos
	)
	flush := func() {
		if len(b) > 0 {
			out = append(out, hostsWord{string(b), pos})
		}
		b = nil
	}
	for _, hc := range field {
		if isHostsBlank(hc.c) || hc.c == ',' {
			flush()
			continue
		}
		if len(b) == 0 {
			pos = hc.pos
		}
		b = append(b, hc.c)
	}
	flush()
	return out
}

func hostsText(field []hostsChar) string {
	b := make([]byte, len(field))
	for i, hc := range field {
		b[i] = hc.c
	}
	return strings.TrimSpace(string(b))
}

// fieldPos is where a field starts (its first non-blank), or end if it is
// empty.
func fieldPos(field []hostsChar, end Pos) Pos {
	for _, hc := range field {
		if !isHostsBlank(hc.c) {
			return hc.pos
		}
	}
	return end
}

func (p *hostsParser) rule(line []hostsChar, def HostsVerdict) *HostsRule {
	n := len(p.errs)
	last := line[len(line)-1].pos.add(1)
	// A bare IPv6 address splits at its colons into a host name and
	// empty options: say what is wrong, and resolve nothing.
	for _, w := range hostsWords(line) {
		addr, bits, hasBits := strings.Cut(w.text, "/")
		if a, err := netip.ParseAddr(addr); err == nil && a.Is6() {
			want := "[" + addr + "]"
			if hasBits {
				want += "/" + bits
			}
			p.errorf(w.pos, "IPv6 address %s must be written in brackets in hosts_access files: %s (bare, its colons split the rule into fields)", w.text, want)
			return nil
		}
	}
	fields := splitFields(line)
	r := &HostsRule{Pos: fieldPos(line, last), Verdict: def, Text: hostsText(line)}
	if len(fields) < 2 {
		p.errorf(last, "expected \":\" and a client list after the daemon list (daemon_list : client_list [: option ...])")
		return nil
	}
	r.daemons = p.list(hostsWords(fields[0]), fieldPos(fields[0], r.Pos), "daemon", p.daemonPattern)
	r.clients = p.list(hostsWords(fields[1]), fieldPos(fields[1], last), "client", p.clientPattern)
	opts := fields[2:]
	for i, f := range opts {
		ws := hostsWords(f)
		if len(ws) == 0 {
			p.errorf(fieldPos(f, last), "expected an option after \":\"")
			continue
		}
		kw, _, _ := strings.Cut(strings.ToLower(ws[0].text), "=")
		switch kw {
		case "allow", "deny":
			if len(ws) > 1 {
				p.errorf(ws[1].pos, "option %s takes no value", kw)
			}
			if i != len(opts)-1 {
				p.errorf(ws[0].pos, "option %s must be the last option of the rule", kw)
			}
			r.Verdict = HostsAllow
			if kw == "deny" {
				r.Verdict = HostsDeny
			}
		case "severity", "banners", "nice", "keepalive", "linger", "umask", "user", "setenv", "rfc931", "spawn":
			// Accepted and ignored: mailnfsd runs no commands and logs
			// denials with its own logger.
		case "twist":
			p.errorf(ws[0].pos, "option twist (replace the service with a command) is not supported; use deny")
		default:
			p.errorf(ws[0].pos, "unknown option %q; expected allow, deny or a hosts_options(5) keyword", ws[0].text)
		}
	}
	if len(p.errs) > n {
		return nil
	}
	return r
}

// list parses "pattern ... [EXCEPT list]".
func (p *hostsParser) list(ws []hostsWord, at Pos, what string, pat func(hostsWord) (hostsPattern, bool)) *hostsList {
	l := &hostsList{}
	if len(ws) == 0 {
		p.errorf(at, "expected a %s list (a pattern or ALL)", what)
		return l
	}
	for i, w := range ws {
		if strings.EqualFold(w.text, "EXCEPT") {
			if i == 0 {
				p.errorf(w.pos, "expected a %s pattern before EXCEPT", what)
			}
			if i == len(ws)-1 {
				p.errorf(w.pos, "expected a %s pattern after EXCEPT", what)
				return l
			}
			l.except = p.list(ws[i+1:], ws[i+1].pos, what, pat)
			return l
		}
		if x, ok := pat(w); ok {
			l.items = append(l.items, x)
		}
	}
	return l
}

func (p *hostsParser) daemonPattern(w hostsWord) (hostsPattern, bool) {
	name, host, hasAt := strings.Cut(w.text, "@")
	var x hostsPattern
	switch {
	case name == "":
		p.errorf(w.pos, "expected a daemon name before \"@\"")
		return x, false
	case strings.EqualFold(name, "ALL"):
		x.kind = patAll
	default:
		for _, c := range []byte(name) {
			if c <= ' ' || c >= 0x7f {
				p.errorf(w.pos, "daemon name %q has a byte that is not printable ASCII", name)
				return x, false
			}
		}
		x.kind, x.name = patName, strings.ToLower(name)
	}
	if hasAt {
		h, ok := p.clientPattern(hostsWord{host, w.pos.add(len(name) + 1)})
		if !ok {
			return x, false
		}
		x.at = &h
	}
	return x, true
}

func (p *hostsParser) clientPattern(w hostsWord) (hostsPattern, bool) {
	s := w.text
	var x hostsPattern
	up := strings.ToUpper(s)
	switch {
	case up == "ALL":
		return hostsPattern{kind: patAll}, true
	case up == "LOCAL":
		return hostsPattern{kind: patLocal}, true
	case up == "KNOWN" || up == "UNKNOWN" || up == "PARANOID":
		p.errorf(w.pos, "%s needs the caller's host name, which mailnfsd never looks up; write addresses or networks", up)
		return x, false
	case strings.HasPrefix(s, "@"):
		p.errorf(w.pos, "NIS netgroups (%s) are not supported; write addresses or networks", s)
		return x, false
	case strings.HasPrefix(s, "/"):
		p.errorf(w.pos, "pattern files (%s) are not supported; list the patterns in the rule", s)
		return x, false
	case strings.Contains(s, "@"):
		p.errorf(w.pos, "user@host (%s) needs an ident lookup, which mailnfsd does not do", s)
		return x, false
	case strings.ContainsAny(s, "*?"):
		p.errorf(w.pos, "wildcards (%s) are not supported; write a.b.c. or a network", s)
		return x, false
	case strings.HasPrefix(s, "."):
		p.errorf(w.pos, "domain pattern %s needs the caller's host name, which mailnfsd never looks up; write a network", s)
		return x, false
	case strings.HasPrefix(s, "["):
		return p.v6Pattern(w)
	}
	if pfx, ok := parseDottedPrefix(s); ok {
		return hostsPattern{kind: patNet, net: pfx}, true
	}
	if a, m, ok := strings.Cut(s, "/"); ok {
		addr, err := netip.ParseAddr(a)
		if err != nil || !addr.Is4() {
			p.errorf(w.pos, "network %q: expected an IPv4 address before \"/\" (IPv6: [addr]/len)", s)
			return x, false
		}
		bits, ok := parseDottedMask(m)
		if !ok {
			bits, ok = parseDecimal(m, 32)
		}
		if !ok {
			p.errorf(w.pos.add(len(a)+1), "network %q: expected a netmask (255.255.255.0) or prefix length 0..32 after \"/\"", s)
			return x, false
		}
		pfx := netip.PrefixFrom(addr, bits)
		if pfx.Masked() != pfx {
			p.errorf(w.pos, "network %s has host bits set beyond the mask (did you mean %s?)", s, pfx.Masked())
			return x, false
		}
		return hostsPattern{kind: patNet, net: pfx}, true
	}
	if addr, err := netip.ParseAddr(s); err == nil && addr.Is4() {
		return hostsPattern{kind: patNet, net: netip.PrefixFrom(addr, 32)}, true
	}
	if !validHostName(s) {
		p.errorf(w.pos, "expected an address, network (a.b.c., n.n.n.n/m.m.m.m, n.n.n.n/len, [v6]/len), host name or ALL, got %q", s)
		return x, false
	}
	if p.opts.LookupHost == nil {
		p.errorf(w.pos, "host name %q cannot be resolved here; write an address", s)
		return x, false
	}
	addrs, err := p.opts.LookupHost(s)
	if err != nil || len(addrs) == 0 {
		p.errorf(w.pos, "host name %q does not resolve: %v", s, err)
		return x, false
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	return hostsPattern{kind: patAddrs, addrs: addrs}, true
}

// parseDottedPrefix parses "a.", "a.b.", "a.b.c." (a trailing dot: the
// leading fields of an address).
func parseDottedPrefix(s string) (netip.Prefix, bool) {
	if !strings.HasSuffix(s, ".") {
		return netip.Prefix{}, false
	}
	parts := strings.Split(strings.TrimSuffix(s, "."), ".")
	if len(parts) > 3 {
		return netip.Prefix{}, false
	}
	var b [4]byte
	for i, f := range parts {
		v, ok := parseDecimal(f, 255)
		if !ok {
			return netip.Prefix{}, false
		}
		b[i] = byte(v)
	}
	return netip.PrefixFrom(netip.AddrFrom4(b), 8*len(parts)), true
}

func (p *hostsParser) v6Pattern(w hostsWord) (hostsPattern, bool) {
	s := w.text
	end := strings.IndexByte(s, ']')
	if end < 0 {
		p.errorf(w.pos, "expected \"]\" closing the IPv6 address %q", s)
		return hostsPattern{}, false
	}
	addr, err := netip.ParseAddr(s[1:end])
	if err != nil || !addr.Is6() || addr.Zone() != "" {
		p.errorf(w.pos.add(1), "expected an IPv6 address inside [], got %q", s[1:end])
		return hostsPattern{}, false
	}
	bits := 128
	rest := s[end+1:]
	if rest != "" {
		l, ok := strings.CutPrefix(rest, "/")
		n, err := strconv.Atoi(l)
		if !ok || err != nil || n < 0 || n > 128 || l != strconv.Itoa(n) {
			p.errorf(w.pos.add(end+1), "expected /len (0..128) after the IPv6 address, got %q", rest)
			return hostsPattern{}, false
		}
		bits = n
	}
	pfx := netip.PrefixFrom(addr, bits)
	if pfx.Masked() != pfx {
		p.errorf(w.pos, "network %s has host bits set beyond the prefix (did you mean [%s]/%d?)", s, pfx.Masked().Addr(), bits)
		return hostsPattern{}, false
	}
	if addr.Is4In6() {
		// ::ffff:a.b.c.d/len: callers are unmapped, so match as IPv4.
		if bits < 96 {
			p.errorf(w.pos, "IPv4-mapped network %s must have a prefix of at least 96 bits", s)
			return hostsPattern{}, false
		}
		pfx = netip.PrefixFrom(addr.Unmap(), bits-96)
	}
	return hostsPattern{kind: patNet, net: pfx}, true
}
