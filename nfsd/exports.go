package nfsd

// The dialect parsers live in exports_bsdsyntax.go and
// exports_linuxsyntax.go: a _freebsd.go or _linux.go suffix would be a GOOS
// build constraint.

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"runtime"
	"slices"
	"sort"
	"strings"

	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/maildirfs"
)

// This file holds the exports model and its parser. The parser reads both
// dialects of reference.md §5: FreeBSD exports(5) lines
//
//	/srv/mail /srv/spool -maproot=0:0 -network 10.1.2.0 -mask 255.255.255.0
//
// and Linux exports(5) lines
//
//	/srv/mail 10.1.2.0/24(rw,no_root_squash) 127.0.0.1(ro)
//
// and normalises both to one model: an ExportTable of Exports, each with the
// Rules of every line that named its path. access.go applies the model to
// requests.

// Nobody is the uid and gid that squashed callers get unless an option says
// otherwise (modern Linux and FreeBSD nobody; reference.md §1.3).
const Nobody = 65534

// bsdNoGroup is the gid FreeBSD-syntax lines give squashed callers
// (DefaultSquash, AUTH_NONE callers, "-maproot=user:"): noGroupFor the
// host. A variable for tests.
var bsdNoGroup = noGroupFor(runtime.GOOS)

// noGroupFor returns the gid of group nogroup on goos: on FreeBSD 65533
// (GID_NOGROUP, which mountd gives squashed root: nobody:nogroup =
// 65534:65533), elsewhere 65534 (Linux's nogroup, and its knfsd's
// anongid).
func noGroupFor(goos string) uint32 {
	if goos == "freebsd" {
		return 65533
	}
	return Nobody
}

// Limits on what an exports file may hold. They bound memory for a hostile
// or broken file; real files are far below them.
const (
	// MaxExportsFile is the largest exports file LoadExports reads.
	MaxExportsFile = 4 << 20
	// MaxExports is the most distinct export paths in one table.
	MaxExports = 4096
	// maxParseErrors is how many errors a parse reports before giving up.
	maxParseErrors = 50
	// maxPath is MNTPATHLEN (RFC 1813 Appendix I).
	maxPath = 1024
)

// Pos is a position in an exports file: 1-based line and byte column.
type Pos struct {
	File      string
	Line, Col int
}

// String formats p as file:line:col.
func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

func (p Pos) add(cols int) Pos { p.Col += cols; return p }

// ParseError is one problem in an exports file. Msg says what was expected.
type ParseError struct {
	Pos Pos
	Msg string
}

// Error formats the error as file:line:col: message.
func (e *ParseError) Error() string { return e.Pos.String() + ": " + e.Msg }

// ParseErrors is every problem found in one exports file, in file order.
type ParseErrors []*ParseError

// Error returns the errors one per line.
func (l ParseErrors) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap returns the errors for errors.Is and errors.As.
func (l ParseErrors) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// Warning is something in an exports file that loads but may not do what
// its author meant: a line whose dialect is ambiguous, a FreeBSD network
// that got its class mask, an option that is accepted but not honoured.
// mailnfsd logs each one at start and on reload, and -check-config prints
// them; they never stop a load.
type Warning struct {
	Pos Pos
	Msg string
}

// String formats the warning as file:line:col: message.
func (w Warning) String() string { return w.Pos.String() + ": " + w.Msg }

// Dialect is the exports syntax a line was written in.
type Dialect uint8

// Dialects.
const (
	FreeBSD Dialect = iota + 1
	Linux
)

// String names the dialect.
func (d Dialect) String() string {
	switch d {
	case FreeBSD:
		return "freebsd"
	case Linux:
		return "linux"
	}
	return fmt.Sprintf("dialect(%d)", uint8(d))
}

// ClientKind says how a Client matches addresses.
type ClientKind uint8

// Client kinds.
const (
	// ClientWorld matches every address (FreeBSD: a line without hosts;
	// Linux: "*" or no client).
	ClientWorld ClientKind = iota
	// ClientNet matches an address prefix; a single address is a /32 or /128.
	ClientNet
	// ClientHost matches the addresses a host name resolved to at load time.
	ClientHost
)

// Client is one host, network or "everyone" on an exports line.
type Client struct {
	Kind ClientKind
	// Net is the prefix for ClientNet, host bits cleared.
	Net netip.Prefix
	// Slash marks a single address written as a network (10.1.2.3/32,
	// 10.1.2.3/255.255.255.255): Linux ranks it with the networks, not
	// with the hosts (nfs-utils client_gettype), and String keeps the
	// length so it reads back the same.
	Slash bool
	// Name is the host name for ClientHost, as written.
	Name string
	// Addrs are the addresses Name resolved to (ClientHost).
	Addrs []netip.Addr
}

// String formats c as MOUNT EXPORT lists it: "10.1.2.0/24", "10.1.2.3",
// a host name, or "*" for everyone.
func (c Client) String() string {
	switch c.Kind {
	case ClientNet:
		if c.Net.IsSingleIP() && !c.Slash {
			return c.Net.Addr().String()
		}
		return c.Net.String()
	case ClientHost:
		return c.Name
	}
	return "*"
}

// specificity ranks how narrowly c matches a (negative: no match): the
// FreeBSD order. A single host beats any network and a longer prefix beats
// a shorter one; everyone ranks lowest. FreeBSD's kernel looks a client up
// in a radix tree of the hosts and networks of all lines for the file
// system (vfs_export.c), so the longest match wins and the default (no
// hosts) entry applies only when nothing else does.
func (c Client) specificity(a netip.Addr) int {
	switch c.Kind {
	case ClientWorld:
		return 0
	case ClientNet:
		if c.Net.Contains(a) {
			return 1 + c.Net.Bits()
		}
	case ClientHost:
		for _, h := range c.Addrs {
			if h == a {
				return 1 + a.BitLen()
			}
		}
	}
	return -1
}

// Linux client types in exports(5) precedence order, ranked by linuxType:
// a single host (name or address), a network (anything written with a
// "/", a /32 too, as nfs-utils' client_gettype types it), a wildcard, a
// netgroup, everyone. mailnfsd refuses wildcards and netgroups, so their
// ranks are unused.
const (
	linuxAnonymous = iota
	linuxNetgroup
	linuxWildcard
	linuxNetwork
	linuxHost
)

// linuxType returns the Linux type rank of c if it matches a, else -1.
func (c Client) linuxType(a netip.Addr) int {
	if c.specificity(a) < 0 {
		return -1
	}
	switch {
	case c.Kind == ClientWorld:
		return linuxAnonymous
	case c.Kind == ClientNet && (!c.Net.IsSingleIP() || c.Slash):
		return linuxNetwork
	}
	return linuxHost
}

// key identifies the client for duplicate detection.
func (c Client) key() string {
	switch c.Kind {
	case ClientNet:
		return "net " + c.Net.String()
	case ClientHost:
		return "host " + c.Name
	}
	return "world"
}

// SquashMode says whose credentials a rule replaces.
type SquashMode uint8

// Squash modes.
const (
	// SquashRoot maps uid 0 (FreeBSD default, -maproot; Linux root_squash).
	SquashRoot SquashMode = iota
	// SquashNone keeps every credential (FreeBSD -maproot=0; Linux
	// no_root_squash).
	SquashNone
	// SquashAll maps every caller (FreeBSD -mapall; Linux all_squash).
	SquashAll
)

// Squash is a rule's credential mapping.
type Squash struct {
	Mode SquashMode
	// Anon is the credential squashed callers get. AUTH_NONE callers get it
	// too under SquashAll and PerID (Linux anonuid/anongid); otherwise
	// (FreeBSD -maproot, whose target may be root itself) they get
	// nobody:nogroup (65534:65533 on a FreeBSD host, 65534:65534
	// elsewhere).
	Anon maildirfs.Cred
	// PerID selects Linux semantics for SquashRoot: uid 0 becomes Anon.UID
	// and gid 0 (primary or supplementary) becomes Anon.GID, each on its
	// own. Without it (FreeBSD -maproot) a caller with uid 0 gets all of
	// Anon and other callers are untouched.
	PerID bool
}

// DefaultSquash is the mapping of a FreeBSD-syntax rule without squash
// options: root becomes nobody:nogroup with no supplementary groups, as
// mountd maps it: 65534:65533 on a FreeBSD host, 65534:65534 on Linux
// (whose nogroup is 65534).
func DefaultSquash() Squash {
	return Squash{Mode: SquashRoot, Anon: bsdNobody()}
}

// bsdNobody is nobody:nogroup on FreeBSD-syntax lines.
func bsdNobody() maildirfs.Cred {
	return maildirfs.Cred{UID: Nobody, GID: bsdNoGroup}
}

// invalidID is the AUTH_SYS uid or gid 4294967295, (uid_t)-1: chown(2)
// reads it as "leave this id unchanged", so an object the server creates
// (as root) and then gives to such a caller would stay root's.
const invalidID = 1<<32 - 1

// Map returns the credential a call runs with. sys is the call's AUTH_SYS
// body, nil for AUTH_NONE and any other flavor (treated as anonymous). The
// result never aliases sys or s.
//
// A uid or gid of 4294967295 becomes the anonymous one, as Linux knfsd
// maps its invalid id (the rule's Anon on Linux lines, nobody:nogroup on
// FreeBSD lines, whatever the squash mode), and a supplementary 4294967295 is
// dropped: no object may be given that id (invalidID).
func (s Squash) Map(sys *rpc.AuthSysParms) maildirfs.Cred {
	c := s.mapIDs(sys)
	if c.UID == invalidID || c.GID == invalidID {
		anon := bsdNobody()
		if s.PerID {
			anon = s.Anon
		}
		if c.UID == invalidID {
			c.UID = anon.UID
			if c.UID == invalidID {
				c.UID = Nobody
			}
		}
		if c.GID == invalidID {
			c.GID = anon.GID
			if c.GID == invalidID {
				c.GID = Nobody
			}
		}
	}
	if slices.Contains(c.GIDs, invalidID) {
		c.GIDs = slices.DeleteFunc(c.GIDs, func(g uint32) bool { return g == invalidID })
	}
	return c
}

// mapIDs is Map before the invalid ids are replaced.
func (s Squash) mapIDs(sys *rpc.AuthSysParms) maildirfs.Cred {
	if s.Mode == SquashAll || (sys == nil && s.PerID) {
		return s.anon()
	}
	if sys == nil {
		return bsdNobody()
	}
	c := maildirfs.Cred{UID: sys.UID, GID: sys.GID, GIDs: append([]uint32(nil), sys.GIDs...)}
	if s.Mode == SquashNone {
		return c
	}
	if !s.PerID {
		if c.UID == 0 {
			return s.anon()
		}
		return c
	}
	if c.UID == 0 {
		c.UID = s.Anon.UID
	}
	if c.GID == 0 {
		c.GID = s.Anon.GID
	}
	for i, g := range c.GIDs {
		if g == 0 {
			c.GIDs[i] = s.Anon.GID
		}
	}
	return c
}

func (s Squash) anon() maildirfs.Cred {
	c := s.Anon
	c.GIDs = append([]uint32(nil), c.GIDs...)
	return c
}

// String formats s for logs and -check-config: "root->65534:65534",
// "all->1000:1000:20", "none".
func (s Squash) String() string {
	var b strings.Builder
	switch s.Mode {
	case SquashNone:
		return "none"
	case SquashAll:
		b.WriteString("all->")
	default:
		b.WriteString("root->")
	}
	fmt.Fprintf(&b, "%d:%d", s.Anon.UID, s.Anon.GID)
	for _, g := range s.Anon.GIDs {
		fmt.Fprintf(&b, ":%d", g)
	}
	if s.PerID {
		b.WriteString(" (per id)")
	}
	return b.String()
}

// Rule is what one exports line grants to its clients on one path.
type Rule struct {
	// Pos is where the line starts.
	Pos     Pos
	Dialect Dialect
	// Clients are the hosts and networks the rule applies to; empty means
	// everyone.
	Clients  []Client
	ReadOnly bool
	Squash   Squash
	// AllDirs lets clients MNT any directory below the export, not only the
	// export itself (FreeBSD -alldirs; always on for Linux lines, whose
	// mountd allows subdirectory mounts).
	AllDirs bool
	// Secure refuses MNT and NFS calls from a source port of 1024 or more
	// (MNT3ERR_ACCES, NFS3ERR_PERM), as Linux does for "secure". Only an
	// explicit Linux "secure" sets it: without it mailnfsd does not check
	// ports (Linux's default would be secure; libnfs and Go clients run
	// unprivileged), and FreeBSD's check is global (vfs.nfsd.nfs_privport,
	// mountd without -n), not an exports option.
	Secure bool

	// compress is the line's compression option ("" or "zstd") and
	// compressPos where it was written (the rule's Pos if absent); add
	// moves it to Export.Compress, which is per path.
	compress    string
	compressPos Pos
}

// matches returns the rule's specificity for a (negative: no match).
func (r *Rule) matches(a netip.Addr) int {
	if len(r.Clients) == 0 {
		return 0
	}
	best := -1
	for _, c := range r.Clients {
		best = max(best, c.specificity(a))
	}
	return best
}

// linuxType returns the best Linux type rank among the rule's clients that
// match a (-1: none does).
func (r *Rule) linuxType(a netip.Addr) int {
	if len(r.Clients) == 0 {
		return linuxAnonymous
	}
	best := -1
	for _, c := range r.Clients {
		best = max(best, c.linuxType(a))
	}
	return best
}

// Export is one exported directory and every rule for it.
type Export struct {
	// Path is the absolute, cleaned directory path.
	Path string
	// ID is the export's stable id in file handles: FNV-1a of Path.
	ID uint32
	// Pos is where Path first appears.
	Pos   Pos
	Rules []*Rule
	// Compress is the store's compression at rest ("" or "zstd", FreeBSD
	// -compress=zstd, Linux compress=zstd), passed to
	// maildirfs.Options.Compress. It is per path: every line and client for
	// the path must say the same.
	Compress string
	// Mountpoint, if not empty, is a directory that must be a mount point
	// for the export to be served (Linux mp, which names Path itself, or
	// mountpoint=DIR): while it is not, at start or at a reload, the export
	// is left out as if it were not in the file (MNT3ERR_ACCES, its handles
	// NFS3ERR_STALE) and an error is logged. It is per path: one client
	// with mp guards the directory for all of them (Linux guards only that
	// client's entry).
	Mountpoint string
	// MountpointPos is where the mp or mountpoint option was written.
	MountpointPos Pos
}

// Match returns the rule that applies to a client address, or nil if the
// client may not use this export. Each dialect keeps its own precedence:
//
//   - Linux rules (exports(5)): the client's type decides (a single host,
//     then a network, then everyone), and among rules of the same type the
//     first in file order wins, however long its prefix; so in
//     "/srv 10.0.0.0/8(ro) 10.1.0.0/16(rw)" 10.1.2.3 gets ro. nfs-utils
//     ranks the entries of every line for a path this way, not only those
//     of one line.
//   - FreeBSD rules: the most specific match wins (a single host, then the
//     longer network prefix, then everyone), as FreeBSD's kernel export
//     lookup does; among equals, the first in file order.
//
// A path with lines in both dialects first picks the Linux winner as
// above, which then competes with the FreeBSD rules by specificity (the
// earlier in the file among equals), reference.md §5.3's "most specific
// across lines".
func (e *Export) Match(a netip.Addr) *Rule {
	// A link-local peer arrives with its zone (fe80::1%eth0), and a prefix
	// never contains a zoned address: match without it. Rules never carry
	// a zone (the parser refuses scoped addresses).
	a = a.Unmap().WithZone("")
	var (
		linux, bsd         *Rule
		linuxI, bsdI       int
		linuxRank, bsdRank = -1, -1
	)
	for i, r := range e.Rules {
		if r.Dialect == Linux {
			if k := r.linuxType(a); k > linuxRank {
				linux, linuxI, linuxRank = r, i, k
			}
		} else if s := r.matches(a); s > bsdRank {
			bsd, bsdI, bsdRank = r, i, s
		}
	}
	switch {
	case linux == nil:
		return bsd
	case bsd == nil:
		return linux
	}
	if s := linux.matches(a); s > bsdRank || (s == bsdRank && linuxI < bsdI) {
		return linux
	}
	return bsd
}

// Groups returns the client list MOUNT EXPORT reports: nil if everyone may
// mount, else each client once, in file order.
func (e *Export) Groups() []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range e.Rules {
		if len(r.Clients) == 0 {
			return nil
		}
		for _, c := range r.Clients {
			if c.Kind == ClientWorld {
				return nil
			}
			s := c.String()
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}

// ExportID returns the handle export id for path: FNV-1a 32 of the path, so
// it is the same on every start and on every server serving that path.
func ExportID(path string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(path))
	return h.Sum32()
}

// ExportTable is a parsed exports file.
type ExportTable struct {
	// Exports in order of first appearance.
	Exports []*Export
	// Warnings are the file's problems that did not stop the load, in
	// file order.
	Warnings []Warning
	byPath   map[string]*Export
}

// Lookup returns the export for an absolute, cleaned path, or nil.
func (t *ExportTable) Lookup(path string) *Export {
	if t == nil {
		return nil
	}
	return t.byPath[path]
}

// Summary describes the table for -check-config and logs, one export a line.
func (t *ExportTable) Summary() string {
	var b strings.Builder
	rules := 0
	for _, e := range t.Exports {
		rules += len(e.Rules)
	}
	fmt.Fprintf(&b, "%d exports, %d rules\n", len(t.Exports), rules)
	for _, e := range t.Exports {
		for _, r := range e.Rules {
			cl := make([]string, len(r.Clients))
			for i, c := range r.Clients {
				cl[i] = c.String()
			}
			if len(cl) == 0 {
				cl = []string{"*"}
			}
			mode := "rw"
			if r.ReadOnly {
				mode = "ro"
			}
			extra := ""
			if r.AllDirs {
				extra = " alldirs"
			}
			if r.Secure {
				extra += " secure"
			}
			if e.Compress != "" {
				extra += " compress=" + e.Compress
			}
			if e.Mountpoint != "" {
				extra += " mountpoint=" + e.Mountpoint
			}
			fmt.Fprintf(&b, "%s\t%s %s squash=%s%s (%s)\n", e.Path, strings.Join(cl, ","), mode, r.Squash, extra, r.Pos)
		}
	}
	return b.String()
}

// Format writes the table back as an exports file that parses to the same
// table (positions aside): FreeBSD rules as FreeBSD lines, Linux rules as
// Linux lines, numbers instead of user names.
func (t *ExportTable) Format() string {
	var b strings.Builder
	for _, e := range t.Exports {
		for _, r := range e.Rules {
			b.WriteString(quoteExportPath(e.Path))
			if r.Dialect == Linux {
				formatLinuxRule(&b, r, e)
			} else {
				formatFreeBSDRule(&b, r, e.Compress)
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func formatFreeBSDRule(b *strings.Builder, r *Rule, compress string) {
	if r.ReadOnly {
		b.WriteString(" -ro")
	}
	if compress != "" {
		b.WriteString(" -compress=" + compress)
	}
	if r.AllDirs {
		b.WriteString(" -alldirs")
	}
	switch r.Squash.Mode {
	case SquashAll:
		fmt.Fprintf(b, " -mapall=%s", credText(r.Squash.Anon))
	default:
		fmt.Fprintf(b, " -maproot=%s", credText(r.Squash.Anon))
	}
	for _, c := range r.Clients {
		// One network is -network's; among hosts it stays a CIDR word
		// (-maproot above keeps the line FreeBSD's).
		if c.Kind == ClientNet && !c.Net.IsSingleIP() && len(r.Clients) == 1 {
			fmt.Fprintf(b, " -network %s", c.Net)
		} else {
			b.WriteString(" " + c.String())
		}
	}
}

func formatLinuxRule(b *strings.Builder, r *Rule, e *Export) {
	client := "*"
	if len(r.Clients) > 0 {
		client = r.Clients[0].String()
	}
	mode := "rw"
	if r.ReadOnly {
		mode = "ro"
	}
	sq := "root_squash"
	switch r.Squash.Mode {
	case SquashNone:
		sq = "no_root_squash"
	case SquashAll:
		sq = "all_squash"
	}
	extra := ""
	if r.Secure {
		extra = ",secure"
	}
	if e.Compress != "" {
		extra += ",compress=" + e.Compress
	}
	switch e.Mountpoint {
	case "":
	case e.Path:
		extra += ",mp"
	default:
		extra += ",mountpoint=" + e.Mountpoint
	}
	fmt.Fprintf(b, " %s(%s,%s,anonuid=%d,anongid=%d%s)", client, mode, sq, r.Squash.Anon.UID, r.Squash.Anon.GID, extra)
}

// credText formats a credential as uid:gid:gid...
func credText(c maildirfs.Cred) string {
	s := fmt.Sprintf("%d:%d", c.UID, c.GID)
	for _, g := range c.GIDs {
		s += fmt.Sprintf(":%d", g)
	}
	return s
}

// quoteExportPath writes a path so the scanner reads it back unchanged:
// bytes that would end or change a word are written as \ooo.
func quoteExportPath(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == '#' || c == '(' {
			fmt.Fprintf(&b, "\\%03o", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// ParseOptions adjust ParseExports. The zero value resolves nothing: host
// names are an error and user names are looked up in the local passwd file.
type ParseOptions struct {
	// LookupHost resolves a host name to addresses at load time. Nil means
	// host names are rejected (write an address).
	LookupHost func(name string) ([]netip.Addr, error)
	// LookupUser resolves a -maproot/-mapall user given without groups
	// (name or number) to a credential with its groups. Nil means the
	// local user database (os/user).
	LookupUser func(name string) (maildirfs.Cred, error)
}

// LoadExports reads and parses an exports file; errors name the path.
func LoadExports(path string, opts *ParseOptions) (*ExportTable, error) {
	data, err := readBounded(path, "exports file", MaxExportsFile)
	if err != nil {
		return nil, err
	}
	return ParseExports(path, data, opts)
}

// ParseExports parses an exports file in either dialect; name is used in
// error positions. On error it returns ParseErrors (up to 50) and no table.
// A file without exports is valid and yields an empty table.
func ParseExports(name string, data []byte, opts *ParseOptions) (*ExportTable, error) {
	if opts == nil {
		opts = &ParseOptions{}
	}
	p := &parser{opts: opts, table: &ExportTable{byPath: map[string]*Export{}}, seen: map[string]Pos{}}
	if len(data) > MaxExportsFile {
		p.errorf(Pos{File: name, Line: 1, Col: 1}, "exports file is %d bytes, more than the %d allowed", len(data), MaxExportsFile)
		return nil, p.errs
	}
	for _, line := range p.scan(name, data) {
		if len(p.errs) >= maxParseErrors {
			break
		}
		p.line(line)
	}
	if len(p.errs) > 0 {
		if len(p.errs) > maxParseErrors {
			p.errs = p.errs[:maxParseErrors]
		}
		return nil, p.errs
	}
	p.warnShadowedLinux()
	sort.SliceStable(p.warns, func(i, j int) bool {
		a, b := p.warns[i].Pos, p.warns[j].Pos
		return a.Line < b.Line || (a.Line == b.Line && a.Col < b.Col)
	})
	p.table.Warnings = p.warns
	return p.table, nil
}

// warnShadowedLinux warns about a Linux network client that never applies:
// an earlier Linux network of the same path contains it, and Linux gives a
// client the first matching network (Export.Match). nfs-utils logs the
// same case at run time ("exported to both ..., arbitrarily choosing
// options from first").
func (p *parser) warnShadowedLinux() {
	for _, e := range p.table.Exports {
		var nets []*Rule
		for _, r := range e.Rules {
			if c := r.Clients; r.Dialect != Linux || len(c) != 1 || c[0].Kind != ClientNet || (c[0].Net.IsSingleIP() && !c[0].Slash) {
				continue
			}
			n := r.Clients[0].Net
			for _, o := range nets {
				on := o.Clients[0].Net
				if on.Bits() <= n.Bits() && on.Contains(n.Addr()) {
					p.warnf(r.Pos, "%s never applies to %s: %s at %s comes first, and Linux gives a client the first network that matches, not the longest (exports(5)); put %s before %s if its options are meant for those clients",
						n, e.Path, on, o.Pos, n, on)
					break
				}
			}
			nets = append(nets, r)
		}
	}
}

type parser struct {
	opts  *ParseOptions
	table *ExportTable
	errs  ParseErrors
	warns []Warning
	// seen maps path+client key to the line that first granted it.
	seen map[string]Pos
	// mp is the Linux mountpoint option of the line being parsed (path
	// "" for the export's own directory); add moves it to the Export.
	mp struct {
		set  bool
		path string
		pos  Pos
	}
}

func (p *parser) errorf(pos Pos, format string, args ...any) {
	p.errs = append(p.errs, &ParseError{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) warnf(pos Pos, format string, args ...any) {
	p.warns = append(p.warns, Warning{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// token is one whitespace-separated word of a logical line, with quotes and
// escapes resolved.
type token struct {
	text string
	pos  Pos
	// literal means part of the token was quoted or escaped, so it is never
	// an option or a special word.
	literal bool
}

// scan splits data into logical lines of tokens: "#" starts a comment
// (outside quotes), a backslash before the newline continues a line,
// "..." quotes, and a backslash escapes the next byte or, before three
// octal digits, writes that byte (Linux \040).
func (p *parser) scan(name string, data []byte) [][]token {
	var (
		lines    [][]token
		cur      []token
		tok      []byte
		inTok    bool
		literal  bool
		tokPos   Pos
		line     = 1
		col      = 1
		i        int
		inQuote  bool
		quotePos Pos
	)
	pos := func() Pos { return Pos{File: name, Line: line, Col: col} }
	start := func() {
		if !inTok {
			inTok, tokPos = true, pos()
		}
	}
	flushTok := func() {
		if inTok {
			cur = append(cur, token{text: string(tok), pos: tokPos, literal: literal})
		}
		inTok, literal, tok = false, false, tok[:0]
	}
	flushLine := func() {
		flushTok()
		if len(cur) > 0 {
			lines = append(lines, cur)
		}
		cur = nil
	}
	for i < len(data) {
		c := data[i]
		if inQuote {
			switch c {
			case '"':
				inQuote = false
				i++
				col++
			case '\n':
				p.errorf(quotePos, "quote is not closed before the end of the line")
				inQuote = false
				inTok, literal, tok, cur = false, false, tok[:0], nil
			case '\\':
				n := p.escape(data[i:], &tok, pos())
				i += n
				col += n
			case 0:
				p.errorf(pos(), "NUL byte in exports file")
				i++
				col++
			default:
				tok = append(tok, c)
				i++
				col++
			}
			continue
		}
		switch {
		case c == '\n':
			flushLine()
			i++
			line, col = line+1, 1
		case c == '\\' && (hasPrefix(data[i+1:], "\n") || hasPrefix(data[i+1:], "\r\n")):
			// Continuation: the logical line goes on; positions stay
			// those of the physical lines.
			flushTok()
			if data[i+1] == '\r' {
				i++
			}
			i += 2
			line, col = line+1, 1
		case c == '\\':
			start()
			literal = true
			n := p.escape(data[i:], &tok, pos())
			i += n
			col += n
		case c == '#':
			flushTok()
			for i < len(data) && data[i] != '\n' {
				i++
			}
		case c == '"':
			start()
			literal, inQuote, quotePos = true, true, pos()
			i++
			col++
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			flushTok()
			i++
			col++
		case c == 0:
			p.errorf(pos(), "NUL byte in exports file")
			i++
			col++
		default:
			start()
			tok = append(tok, c)
			i++
			col++
		}
	}
	if inQuote {
		p.errorf(quotePos, "quote is not closed before the end of the file")
		return lines
	}
	flushLine()
	return lines
}

// escape decodes the backslash escape at the start of b into *tok and
// returns the bytes consumed.
func (p *parser) escape(b []byte, tok *[]byte, pos Pos) int {
	if len(b) < 2 || b[1] == '\n' {
		p.errorf(pos, "backslash at the end of the file or a quoted string escapes nothing")
		return 1
	}
	if len(b) >= 4 && isOctal(b[1]) && isOctal(b[2]) && isOctal(b[3]) {
		v := int(b[1]-'0')<<6 | int(b[2]-'0')<<3 | int(b[3]-'0')
		if v > 0xff || v == 0 {
			p.errorf(pos, "octal escape \\%s must be a byte from \\001 to \\377", b[1:4])
			return 4
		}
		*tok = append(*tok, byte(v))
		return 4
	}
	if b[1] == 0 {
		p.errorf(pos.add(1), "NUL byte in exports file")
		return 2
	}
	*tok = append(*tok, b[1])
	return 2
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

func hasPrefix(b []byte, s string) bool { return len(b) >= len(s) && string(b[:len(s)]) == s }

// line parses one logical line.
func (p *parser) line(toks []token) {
	first := toks[0]
	if !first.literal && first.text == "V4:" {
		// FreeBSD NFSv4 root marker: nothing to do for NFSv3.
		return
	}
	var dirs []token
	for len(toks) > 0 && strings.HasPrefix(toks[0].text, "/") {
		if t := toks[0]; !t.literal && strings.Contains(t.text, "(") {
			dir, opts, _ := strings.Cut(t.text, "(")
			p.errorf(t.pos, "options need a client before them: write %s *(%s for everyone (quote a path that contains \"(\")", dir, opts)
			return
		}
		dirs = append(dirs, toks[0])
		toks = toks[1:]
	}
	if len(dirs) == 0 {
		p.errorf(first.pos, "an exports line starts with an absolute directory path like /srv/mail, got %q", first.text)
		return
	}
	var paths []string
	for _, d := range dirs {
		clean, msg := cleanExportPath(d.text)
		if msg != "" {
			p.errorf(d.pos, "%s", msg)
			return
		}
		paths = append(paths, clean)
	}
	var rules []*Rule
	var ok bool
	p.mp.set = false
	if isLinuxLine(toks) {
		if len(dirs) > 1 {
			p.errorf(dirs[1].pos, "a Linux exports line names one directory, got a second one %q", dirs[1].text)
			return
		}
		rules, ok = p.linuxLine(first.pos, toks)
	} else {
		var r *Rule
		r, ok = p.freebsdLine(first.pos, toks)
		rules = []*Rule{r}
		if ok && len(dirs) == 1 {
			// Linux lines name one directory: with several, the line
			// can only be FreeBSD's.
			p.warnAmbiguous(first.pos, quoteExportPath(paths[0]), toks)
		}
	}
	if !ok {
		return
	}
	for i, path := range paths {
		p.add(path, dirs[i].pos, rules)
		if p.mp.set {
			p.setMountpoint(path)
		}
	}
}

// setMountpoint moves the line's mountpoint option to the export of path.
// A path has one mount point: lines that name different ones are an error.
func (p *parser) setMountpoint(path string) {
	e := p.table.byPath[path]
	if e == nil {
		return // add failed and said why
	}
	mp := p.mp.path
	if mp == "" {
		mp = path
	}
	if e.Mountpoint != "" && e.Mountpoint != mp {
		p.errorf(p.mp.pos, "%s: mount point %s here but %s at %s; one mount point per directory", path, mp, e.Mountpoint, e.MountpointPos)
		return
	}
	if e.Mountpoint == "" {
		e.Mountpoint, e.MountpointPos = mp, p.mp.pos
	}
}

// add appends rules to the export for path, rejecting a client that a
// previous line already named for the same path.
func (p *parser) add(path string, pos Pos, rules []*Rule) {
	e := p.table.byPath[path]
	// Compression is per store, so per path: every rule must agree.
	var first *Rule
	if e != nil && len(e.Rules) > 0 {
		first = e.Rules[0]
	} else if len(rules) > 0 {
		first = rules[0]
	}
	if first != nil {
		for _, r := range rules {
			if r.compress != first.compress {
				p.errorf(r.compressPos, "%s: %s here but %s at %s; compression is per directory, so every line and client for it must say the same", path, compressText(r.Dialect, r.compress), compressText(first.Dialect, first.compress), first.compressPos)
				return
			}
		}
	}
	if e == nil {
		if len(p.table.Exports) >= MaxExports {
			p.errorf(pos, "more than %d exports", MaxExports)
			return
		}
		e = &Export{Path: path, ID: ExportID(path), Pos: pos}
		for _, o := range p.table.Exports {
			if o.ID == e.ID {
				p.errorf(pos, "export %s has the same handle id as %s (%s); rename one of them", path, o.Path, o.Pos)
				return
			}
		}
		p.table.byPath[path] = e
		p.table.Exports = append(p.table.Exports, e)
	}
	for _, r := range rules {
		clients := r.Clients
		if len(clients) == 0 {
			clients = []Client{{Kind: ClientWorld}}
		}
		keys := make([]string, len(clients))
		line := map[string]bool{}
		for i, c := range clients {
			k := c.key()
			keys[i] = k
			what := c.String()
			if c.Kind == ClientWorld {
				what = "everyone"
			}
			prev, dup := p.seen[path+"\x00"+k]
			switch {
			case line[k]:
				p.errorf(r.Pos, "%s names %s twice on one line", path, what)
				return
			case dup:
				p.errorf(r.Pos, "%s is already exported to %s at %s; a client may appear once per directory", path, what, prev)
				return
			}
			line[k] = true
		}
		for _, k := range keys {
			p.seen[path+"\x00"+k] = r.Pos
		}
		e.Rules = append(e.Rules, r)
		e.Compress = r.compress
	}
}

// compressText names a compression setting in a dialect's own words, for
// messages.
func compressText(d Dialect, method string) string {
	switch {
	case method == "":
		return "no compress option"
	case d == Linux:
		return "compress=" + method
	}
	return "-compress=" + method
}

// checkCompress validates a compress option value; opt is the option as
// written ("-compress" or "compress"). It reports errors itself.
func (p *parser) checkCompress(opt string, v optPart, has bool) bool {
	switch {
	case !has || v.text == "":
		p.errorf(v.pos, "%s needs a method: write %s=zstd", opt, opt)
		return false
	case v.text != "zstd":
		p.errorf(v.pos, "%s supports only zstd, got %q", opt, v.text)
		return false
	}
	return true
}

// cleanExportPath checks and cleans an export path; msg is non-empty on
// error.
func cleanExportPath(s string) (clean, msg string) {
	if !strings.HasPrefix(s, "/") {
		return "", fmt.Sprintf("export path must be absolute, got %q", s)
	}
	if len(s) > maxPath {
		return "", fmt.Sprintf("export path is %d bytes, longer than the %d MOUNT allows", len(s), maxPath)
	}
	var parts []string
	for _, c := range strings.Split(s, "/") {
		switch c {
		case "":
		case ".", "..":
			return "", fmt.Sprintf("export path must not contain %q components, got %q", c, s)
		default:
			parts = append(parts, c)
		}
	}
	return "/" + strings.Join(parts, "/"), ""
}

// isLinuxLine reports whether the words after the directories are in the
// Linux dialect (reference.md §5.3). A client immediately followed by
// "(options)", a "*", or a "-opts" defaults word with Linux-only option
// names make the line Linux. Otherwise a FreeBSD-only option (-maproot,
// -network, -alldirs, ...) makes it FreeBSD, and so does a line without
// any of these unless a client word is one that FreeBSD's host list cannot
// hold: a network with a "/len" or "/mask" (FreeBSD writes networks with
// -network), a host pattern with "*", "?" or "[", or an "@netgroup"
// (FreeBSD names netgroups without the "@"). A bare IPv6 address is not a
// sign: FreeBSD mountd resolves host words with getaddrinfo, which takes
// it.
func isLinuxLine(toks []token) bool {
	freebsd, linuxClient := false, false
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.literal {
			continue
		}
		if strings.HasPrefix(t.text, "-") {
			parts := strings.Split(t.text[1:], ",")
			for _, o := range parts {
				name, _, _ := strings.Cut(o, "=")
				if linuxOnlyOptions[name] {
					return true
				}
				freebsd = freebsd || freebsdOnlyOptions[name]
			}
			// "-network 10.1.2.0/24": the FreeBSD option's value is the
			// next word, not a client (freebsdLine takes it the same way).
			if freebsdValueOptions[parts[len(parts)-1]] && i+1 < len(toks) && !strings.HasPrefix(toks[i+1].text, "-") {
				i++
			}
			continue
		}
		if strings.Contains(t.text, "(") || t.text == "*" {
			return true
		}
		if strings.ContainsAny(t.text, "/*?[") || strings.HasPrefix(t.text, "@") {
			linuxClient = true
		}
	}
	return linuxClient && !freebsd
}

// freebsdOnlyOptions are FreeBSD flags that are not Linux option names: a
// line with one is FreeBSD's even if a client word looks like Linux's (a
// CIDR host word, which this parser also takes on FreeBSD lines).
var freebsdOnlyOptions = map[string]bool{
	"o": true, "alldirs": true, "quiet": true, "maproot": true, "r": true,
	"mapall": true, "network": true, "mask": true,
}

// freebsdValueOptions are the FreeBSD options that may take their value as
// the next word ("-network 10.1.2.0") instead of after "=".
var freebsdValueOptions = map[string]bool{
	"network": true, "mask": true, "maproot": true, "r": true, "mapall": true,
	"sec": true, "compress": true,
}

// warnAmbiguous warns about a line read as FreeBSD that Linux would read
// too, but differently: one directory and only plain client words (or
// none), no options. FreeBSD exports it read-write; Linux read-only.
func (p *parser) warnAmbiguous(pos Pos, path string, toks []token) {
	for _, t := range toks {
		if !t.literal && strings.HasPrefix(t.text, "-") {
			return // a FreeBSD option: the line is FreeBSD's
		}
	}
	who, ro, rw := "everyone", "*(ro)", "*(rw)"
	if len(toks) > 0 {
		var hosts, ros, rws []string
		for _, t := range toks {
			hosts = append(hosts, t.text)
			ros = append(ros, t.text+"(ro)")
			rws = append(rws, t.text+"(rw)")
		}
		who, ro, rw = strings.Join(hosts, " "), strings.Join(ros, " "), strings.Join(rws, " ")
	}
	p.warnf(pos, "read as FreeBSD exports(5): %s is read-write for %s (root squashed), but Linux reads this line as read-only; "+
		"write %s %s for Linux's read-only, or %s %s to keep read-write", path, who, path, ro, path, rw)
}

// linuxOnlyOptions are Linux option names that are not FreeBSD flags.
var linuxOnlyOptions = map[string]bool{
	"rw": true, "sync": true, "async": true, "secure": true, "insecure": true,
	"root_squash": true, "no_root_squash": true, "all_squash": true, "no_all_squash": true,
	"anonuid": true, "anongid": true, "subtree_check": true, "no_subtree_check": true,
	"wdelay": true, "no_wdelay": true, "hide": true, "nohide": true, "crossmnt": true,
	"nocrossmnt": true, "fsid": true, "mountpoint": true, "mp": true, "no_acl": true,
	"acl": true, "insecure_locks": true, "secure_locks": true, "no_auth_nlm": true,
	"auth_nlm": true, "pnfs": true, "no_pnfs": true, "security_label": true,
}

// parseAddrOrNet parses a single address or a network written as
// addr/len or addr/dotted-mask (Linux). ok=false with msg on error.
func parseAddrOrNet(s string) (netip.Prefix, string) {
	addrPart, maskPart, hasMask := strings.Cut(s, "/")
	if strings.Contains(addrPart, "%") {
		return netip.Prefix{}, fmt.Sprintf("scoped IPv6 addresses are not supported, got %q", s)
	}
	a, err := netip.ParseAddr(addrPart)
	if err != nil {
		return netip.Prefix{}, ""
	}
	if !hasMask {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), ""
	}
	if bits, ok := parseDecimal(maskPart, a.BitLen()); ok {
		if a.Is4In6() {
			// ::ffff:a.b.c.d/len: callers are unmapped, so match as
			// IPv4; the first 96 bits are the mapping prefix.
			if bits < 96 {
				return netip.Prefix{}, fmt.Sprintf("IPv4-mapped network %q needs a prefix length of at least 96 (the mapping prefix), got %d", s, bits)
			}
			return netip.PrefixFrom(a.Unmap(), bits-96).Masked(), ""
		}
		return netip.PrefixFrom(a, bits).Masked(), ""
	}
	if a.Is4() {
		if bits, ok := parseDottedMask(maskPart); ok {
			return netip.PrefixFrom(a, bits).Masked(), ""
		}
	}
	return netip.Prefix{}, fmt.Sprintf("network %q needs a prefix length from 0 to %d or a dotted netmask like 255.255.255.0 after the /", s, a.BitLen())
}

// parseDecimal parses a small non-negative decimal of at most limit.
func parseDecimal(s string, limit int) (int, bool) {
	if s == "" || len(s) > 10 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, n <= limit
}

// parseUint32 parses a decimal uid or gid.
func parseUint32(s string) (uint32, bool) {
	n, ok := parseDecimal(s, 1<<32-1)
	return uint32(n), ok
}

// parseID parses a uid or gid as mountd and exportfs read one (atoi and
// strtol into uid_t): a number, or a negative one taken modulo 2^32, so
// the old "nobody" of -maproot=-2:-2 and anonuid=-2 is 4294967294.
func parseID(s string) (uint32, bool) {
	if neg, ok := strings.CutPrefix(s, "-"); ok {
		n, ok := parseDecimal(neg, 1<<31)
		return uint32(-int64(n)), ok && n > 0
	}
	return parseUint32(s)
}

// parseDottedMask parses a contiguous IPv4 netmask and returns its length.
func parseDottedMask(s string) (int, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return 0, false
	}
	b := a.As4()
	m := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	bits := 0
	for m&(1<<31) != 0 {
		bits++
		m <<= 1
	}
	if m != 0 {
		return 0, false
	}
	return bits, true
}

// parseHostClient turns a host word (address, network or name) into a
// Client. It reports errors itself.
func (p *parser) parseHostClient(t token, text string) (Client, bool) {
	if text == "" {
		p.errorf(t.pos, "expected a host address, network or name, got an empty word")
		return Client{}, false
	}
	if pfx, msg := parseAddrOrNet(text); msg != "" {
		p.errorf(t.pos, "%s", msg)
		return Client{}, false
	} else if pfx.IsValid() {
		return Client{Kind: ClientNet, Net: pfx, Slash: pfx.IsSingleIP() && strings.Contains(text, "/")}, true
	}
	if plain, ok := unbracketIPv6(text); ok {
		p.errorf(t.pos, "IPv6 addresses are written without brackets in exports, got %q; write %s", text, plain)
		return Client{}, false
	}
	switch {
	case strings.HasPrefix(text, "@"):
		p.errorf(t.pos, "netgroups are not supported, got %q; list the hosts or a network", text)
		return Client{}, false
	case strings.ContainsAny(text, "*?["):
		p.errorf(t.pos, "host name wildcards are not supported, got %q; use a network like 10.1.2.0/24", text)
		return Client{}, false
	case strings.Contains(text, "/"):
		p.errorf(t.pos, "expected a network like 10.1.2.0/24, got %q", text)
		return Client{}, false
	}
	if !validHostName(text) {
		p.errorf(t.pos, "expected a host address, network or name, got %q", text)
		return Client{}, false
	}
	if p.opts.LookupHost == nil {
		p.errorf(t.pos, "host names are not resolved by this server yet, got %q; write its address", text)
		return Client{}, false
	}
	addrs, err := p.opts.LookupHost(text)
	if err != nil {
		p.errorf(t.pos, "cannot resolve host %q: %v", text, err)
		return Client{}, false
	}
	if len(addrs) == 0 {
		p.errorf(t.pos, "host %q has no addresses", text)
		return Client{}, false
	}
	c := Client{Kind: ClientHost, Name: text}
	for _, a := range addrs {
		c.Addrs = append(c.Addrs, a.Unmap())
	}
	return c, true
}

// unbracketIPv6 returns s without the brackets around the IPv6 address it
// starts with ("[fd00::]/64" -> "fd00::/64"), the hosts.allow and URL
// form, and whether s was written so. Exports files take IPv6 addresses
// bare: Linux reads a word with '[' as a host name wildcard, which never
// matches an address.
func unbracketIPv6(s string) (string, bool) {
	inner, rest, ok := strings.Cut(s, "]")
	if !ok || !strings.HasPrefix(inner, "[") {
		return "", false
	}
	if a, err := netip.ParseAddr(inner[1:]); err != nil || !a.Is6() {
		return "", false
	}
	return inner[1:] + rest, true
}

// validHostName accepts RFC 1123 style names (letters, digits, '-', '.',
// '_'), at most 253 bytes.
func validHostName(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
		default:
			return false
		}
	}
	return true
}

// sortedKeys returns the keys of m, sorted, for error messages.
func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
