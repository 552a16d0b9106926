package nfsd

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/maildirfs"
)

// testParseOptions resolves a fixed set of names so tests never depend on
// the machine's passwd file or DNS.
func testParseOptions() *ParseOptions {
	users := map[string]maildirfs.Cred{
		"root":   {UID: 0, GID: 0, GIDs: []uint32{5}},
		"0":      {UID: 0, GID: 0, GIDs: []uint32{5}},
		"nobody": {UID: 65534, GID: 65534},
		"vmail":  {UID: 5000, GID: 5000, GIDs: []uint32{12}},
	}
	hosts := map[string][]netip.Addr{
		"mx1.example": {netip.MustParseAddr("10.9.0.1"), netip.MustParseAddr("fd00::1")},
	}
	return &ParseOptions{
		LookupUser: func(name string) (maildirfs.Cred, error) {
			if c, ok := users[name]; ok {
				return c, nil
			}
			return maildirfs.Cred{}, errors.New("unknown user")
		},
		LookupHost: func(name string) ([]netip.Addr, error) {
			if a, ok := hosts[name]; ok {
				return a, nil
			}
			return nil, errors.New("no such host")
		},
	}
}

func TestParseExports(t *testing.T) {
	cases := map[string]struct {
		in   string
		want string // ExportTable.Summary
	}{
		"Empty": {"", "0 exports, 0 rules\n"},
		"CommentsAndBlankLines": {
			"# mail exports\n\n   # indented comment\n/srv/mail # everyone\n",
			"1 exports, 1 rules\n/srv/mail\t* rw squash=root->65534:65534 (exports:4:1)\n",
		},
		"PlainPathIsEveryoneReadWrite": {
			"/srv/mail\n",
			"1 exports, 1 rules\n/srv/mail\t* rw squash=root->65534:65534 (exports:1:1)\n",
		},
		"PathIsCleaned": {
			"//srv//mail/\n",
			"1 exports, 1 rules\n/srv/mail\t* rw squash=root->65534:65534 (exports:1:1)\n",
		},
		"NetworkMask": {
			"/srv/mail -network 10.1.2.0 -mask 255.255.255.0\n",
			"1 exports, 1 rules\n/srv/mail\t10.1.2.0/24 rw squash=root->65534:65534 (exports:1:1)\n",
		},
		"NetworkEqualsForms": {
			"/srv/mail -network=10.1.2.0 -mask=255.255.0.0\n",
			"1 exports, 1 rules\n/srv/mail\t10.1.0.0/16 rw squash=root->65534:65534 (exports:1:1)\n",
		},
		"NetworkPrefixLength": {
			"/srv/mail -network 192.168.0/24\n/srv/v6 -network fd00:1::/64\n",
			"2 exports, 2 rules\n/srv/mail\t192.168.0.0/24 rw squash=root->65534:65534 (exports:1:1)\n" +
				"/srv/v6\tfd00:1::/64 rw squash=root->65534:65534 (exports:2:1)\n",
		},
		"NetworkHostBitsCleared": {
			"/srv/mail -network 10.1.2.77/24\n",
			"1 exports, 1 rules\n/srv/mail\t10.1.2.0/24 rw squash=root->65534:65534 (exports:1:1)\n",
		},
		"PartialNetwork": {
			// FreeBSD mountd: no -mask, so the class mask of the padded
			// address (131.104.48.0 is class B).
			"/u -network 131.104.48\n",
			"1 exports, 1 rules\n/u\t131.104.0.0/16 rw squash=root->65534:65534 (exports:1:1)\n",
		},
		"ClassfulNetworks": {
			"/a -network 10.1.2.0\n/b -network 10.1\n/c -network 192.168.5\n/d -network=172.16.9.0\n",
			"4 exports, 4 rules\n/a\t10.0.0.0/8 rw squash=root->65534:65534 (exports:1:1)\n" +
				"/b\t10.0.0.0/8 rw squash=root->65534:65534 (exports:2:1)\n" +
				"/c\t192.168.5.0/24 rw squash=root->65534:65534 (exports:3:1)\n" +
				"/d\t172.16.0.0/16 rw squash=root->65534:65534 (exports:4:1)\n",
		},
		"PartialNetworkWithMask": {
			"/u -maproot=vmail: -network 131.104.48 -mask 255.255.255.0\n",
			"1 exports, 1 rules\n/u\t131.104.48.0/24 rw squash=root->5000:65534 (exports:1:1)\n",
		},
		"Continuation": {
			"/srv/mail \\\n  -network 10.0.0.0 \\\n  -mask 255.0.0.0\n",
			"1 exports, 1 rules\n/srv/mail\t10.0.0.0/8 rw squash=root->65534:65534 (exports:1:1)\n",
		},
		"ContinuationCRLF": {
			"/srv/mail \\\r\n  127.0.0.1\r\n",
			"1 exports, 1 rules\n/srv/mail\t127.0.0.1 rw squash=root->65534:65534 (exports:1:1)\n",
		},
		"SeveralLinesPerPath": {
			"/srv/mail -ro -network 10.0.0.0/8\n/srv/mail -maproot=0:0 10.1.2.3 10.1.2.4\n",
			"1 exports, 2 rules\n/srv/mail\t10.0.0.0/8 ro squash=root->65534:65534 (exports:1:1)\n" +
				"/srv/mail\t10.1.2.3,10.1.2.4 rw squash=root->0:0 (exports:2:1)\n",
		},
		"SeveralDirsOneLine": {
			"/usr /usr/local -maproot=0:10 127.0.0.1\n",
			"2 exports, 2 rules\n/usr\t127.0.0.1 rw squash=root->0:10 (exports:1:1)\n" +
				"/usr/local\t127.0.0.1 rw squash=root->0:10 (exports:1:1)\n",
		},
		"CombinedOptions": {
			"/srv -alldirs,quiet,ro -mapall=vmail\n",
			"1 exports, 1 rules\n/srv\t* ro squash=all->5000:5000:12 alldirs (exports:1:1)\n",
		},
		"MaprootUserAndGroups": {
			"/a -maproot=root 127.0.0.1\n/b -r 5000:6000:7000:8000 127.0.0.1\n/c -maproot 1000: 127.0.0.1\n",
			"3 exports, 3 rules\n/a\t127.0.0.1 rw squash=root->0:0:5 (exports:1:1)\n" +
				"/b\t127.0.0.1 rw squash=root->5000:6000:7000:8000 (exports:2:1)\n" +
				"/c\t127.0.0.1 rw squash=root->1000:65534 (exports:3:1)\n",
		},
		"NegativeIDs": {
			// mountd's atoi and exportfs's strtol: -2 is (uid_t)-2.
			"/a -maproot=-2:-2 127.0.0.1\n/b 127.0.0.1(rw,all_squash,anonuid=-2,anongid=-2)\n",
			"2 exports, 2 rules\n/a\t127.0.0.1 rw squash=root->4294967294:4294967294 (exports:1:1)\n" +
				"/b\t127.0.0.1 rw squash=all->4294967294:4294967294 (per id) alldirs (exports:2:4)\n",
		},
		"SecSys": {
			"/a -sec=sys 127.0.0.1\n",
			"1 exports, 1 rules\n/a\t127.0.0.1 rw squash=root->65534:65534 (exports:1:1)\n",
		},
		"HostName": {
			"/a mx1.example\n",
			"1 exports, 1 rules\n/a\tmx1.example rw squash=root->65534:65534 (exports:1:1)\n",
		},
		"V4LineIgnored": {
			"V4: / -sec=sys\n/a\n",
			"1 exports, 1 rules\n/a\t* rw squash=root->65534:65534 (exports:2:1)\n",
		},
		"QuotedAndEscapedPath": {
			"\"/srv/my mail\" 127.0.0.1\n/srv/a\\040b\n",
			"2 exports, 2 rules\n/srv/my mail\t127.0.0.1 rw squash=root->65534:65534 (exports:1:1)\n" +
				"/srv/a b\t* rw squash=root->65534:65534 (exports:2:1)\n",
		},
		"LinuxDefaults": {
			// No options, but FreeBSD's host list cannot hold a network
			// (it needs -network): a Linux line, so Linux's ro and
			// root_squash.
			"/srv/mail 10.1.2.0/24\n/srv/v6 fd00::/64\n",
			"2 exports, 2 rules\n/srv/mail\t10.1.2.0/24 ro squash=root->65534:65534 (per id) alldirs (exports:1:11)\n" +
				"/srv/v6\tfd00::/64 ro squash=root->65534:65534 (per id) alldirs (exports:2:9)\n",
		},
		"LinuxNetworkAmongHosts": {
			"/srv 127.0.0.1 10.1.0.0/255.255.0.0\n",
			"1 exports, 2 rules\n/srv\t127.0.0.1 ro squash=root->65534:65534 (per id) alldirs (exports:1:6)\n" +
				"/srv\t10.1.0.0/16 ro squash=root->65534:65534 (per id) alldirs (exports:1:16)\n",
		},
		"FreeBSDNetworkWordIsNotAClient": {
			// The "/24" belongs to -network's value, not to a client.
			"/srv -network 10.1.2.0/24\n",
			"1 exports, 1 rules\n/srv\t10.1.2.0/24 rw squash=root->65534:65534 (exports:1:1)\n",
		},
		"FreeBSDOptionWithCIDRHost": {
			// A FreeBSD-only option makes the line FreeBSD's; the CIDR
			// host word is this parser's extension there.
			"/srv -alldirs 127.0.0.1 10.0.0.0/8\n",
			"1 exports, 1 rules\n/srv\t127.0.0.1,10.0.0.0/8 rw squash=root->65534:65534 alldirs (exports:1:1)\n",
		},
		"PlainHostsAreFreeBSD": {
			// Ambiguous: FreeBSD's reading (rw), with a warning.
			"/srv 10.1.2.3 fd00::1\n",
			"1 exports, 1 rules\n/srv\t10.1.2.3,fd00::1 rw squash=root->65534:65534 (exports:1:1)\n",
		},
		"LinuxClients": {
			"/srv/mail 10.1.2.0/24(rw,no_root_squash) 127.0.0.1(ro) *(rw,all_squash,anonuid=5000,anongid=5001)\n",
			"1 exports, 3 rules\n/srv/mail\t10.1.2.0/24 rw squash=none alldirs (exports:1:11)\n" +
				"/srv/mail\t127.0.0.1 ro squash=root->65534:65534 (per id) alldirs (exports:1:42)\n" +
				"/srv/mail\t* rw squash=all->5000:5001 (per id) alldirs (exports:1:56)\n",
		},
		"LinuxDottedMask": {
			"/srv 10.1.0.0/255.255.0.0(rw)\n",
			"1 exports, 1 rules\n/srv\t10.1.0.0/16 rw squash=root->65534:65534 (per id) alldirs (exports:1:6)\n",
		},
		"LinuxDefaultsWord": {
			"/srv -rw,sync 127.0.0.1 10.0.0.1(ro,insecure,no_subtree_check)\n",
			"1 exports, 2 rules\n/srv\t127.0.0.1 rw squash=root->65534:65534 (per id) alldirs (exports:1:15)\n" +
				"/srv\t10.0.0.1 ro squash=root->65534:65534 (per id) alldirs (exports:1:25)\n",
		},
		"LinuxSecure": {
			// Only an explicit secure is enforced; insecure clears a
			// secure default.
			"/srv -secure 127.0.0.1(rw) 10.0.0.1(rw,insecure) 10.0.0.2(secure,insecure,secure)\n/srv2 127.0.0.1(rw)\n",
			"2 exports, 4 rules\n/srv\t127.0.0.1 rw squash=root->65534:65534 (per id) alldirs secure (exports:1:14)\n" +
				"/srv\t10.0.0.1 rw squash=root->65534:65534 (per id) alldirs (exports:1:28)\n" +
				"/srv\t10.0.0.2 ro squash=root->65534:65534 (per id) alldirs secure (exports:1:50)\n" +
				"/srv2\t127.0.0.1 rw squash=root->65534:65534 (per id) alldirs (exports:2:7)\n",
		},
		"LinuxMountpoint": {
			// The mount point belongs to the directory: one client's mp
			// guards it for all.
			"/srv/mail 10.0.0.0/8(rw,mp) 127.0.0.1(rw)\n/srv/b *(mountpoint=/srv//)\n/srv/c -mp 127.0.0.1(rw)\n/srv/c 10.0.0.1(mountpoint)\n",
			"3 exports, 5 rules\n/srv/mail\t10.0.0.0/8 rw squash=root->65534:65534 (per id) alldirs mountpoint=/srv/mail (exports:1:11)\n" +
				"/srv/mail\t127.0.0.1 rw squash=root->65534:65534 (per id) alldirs mountpoint=/srv/mail (exports:1:29)\n" +
				"/srv/b\t* ro squash=root->65534:65534 (per id) alldirs mountpoint=/srv (exports:2:8)\n" +
				"/srv/c\t127.0.0.1 rw squash=root->65534:65534 (per id) alldirs mountpoint=/srv/c (exports:3:12)\n" +
				"/srv/c\t10.0.0.1 ro squash=root->65534:65534 (per id) alldirs mountpoint=/srv/c (exports:4:8)\n",
		},
		"LinuxOnlyDefaults": {
			"/srv -rw\n",
			"1 exports, 1 rules\n/srv\t* rw squash=root->65534:65534 (per id) alldirs (exports:1:1)\n",
		},
		"LinuxIPv6": {
			"/srv fd00::/8(rw) ::1(rw)\n",
			"1 exports, 2 rules\n/srv\tfd00::/8 rw squash=root->65534:65534 (per id) alldirs (exports:1:6)\n" +
				"/srv\t::1 rw squash=root->65534:65534 (per id) alldirs (exports:1:19)\n",
		},
		"MappedNetworks": {
			// IPv4-mapped networks match the unmapped callers: the first
			// 96 bits are the mapping prefix.
			"/a ::ffff:10.1.2.0/120(rw)\n/b -network ::ffff:10.1.0.0/112\n/c ::ffff:10.1.2.3\n",
			"3 exports, 3 rules\n/a\t10.1.2.0/24 rw squash=root->65534:65534 (per id) alldirs (exports:1:4)\n" +
				"/b\t10.1.0.0/16 rw squash=root->65534:65534 (exports:2:1)\n" +
				"/c\t10.1.2.3 rw squash=root->65534:65534 (exports:3:1)\n",
		},
		"Mixed": {
			"/srv/mail -network 10.0.0.0/8\n/srv/mail 127.0.0.1(rw)\n",
			"1 exports, 2 rules\n/srv/mail\t10.0.0.0/8 rw squash=root->65534:65534 (exports:1:1)\n" +
				"/srv/mail\t127.0.0.1 rw squash=root->65534:65534 (per id) alldirs (exports:2:11)\n",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tab, err := ParseExports("exports", []byte(tc.in), testParseOptions())
			exNoErr(t, err)
			exEqual(t, tc.want, tab.Summary())
			// The formatted table parses back to the same table.
			again, err := ParseExports("formatted", []byte(tab.Format()), testParseOptions())
			exNoErr(t, err, "formatted:\n%s", tab.Format())
			exEqual(t, stripPos(tab), stripPos(again))
		})
	}
}

func TestParseExportsErrors(t *testing.T) {
	cases := map[string]struct {
		in   string
		want string
	}{
		"BadMask": {
			"# mail\n\n/srv/mail -network 10.1.2.0 -mask foo\n",
			`exports:3:35: -mask needs a dotted netmask like 255.255.255.0, got "foo"`,
		},
		"NonContiguousMask": {
			"/srv -network 10.1.2.0 -mask 255.0.255.0\n",
			`exports:1:30: -mask needs a dotted netmask like 255.255.255.0, got "255.0.255.0"`,
		},
		"MaskEquals": {
			"/srv -network=10.1.2.0 -mask=bar\n",
			`exports:1:30: -mask needs a dotted netmask like 255.255.255.0, got "bar"`,
		},
		"MaskWithoutNetwork": {
			"/srv -mask 255.255.255.0\n",
			"exports:1:6: -mask needs a -network on the same line",
		},
		"MaskAndPrefix": {
			"/srv -network 10.0.0.0/8 -mask 255.0.0.0\n",
			"exports:1:32: -network 10.0.0.0/8 already has a prefix length; drop -mask",
		},
		"MaskOnIPv6": {
			"/srv -network fd00:: -mask 255.0.0.0\n",
			"exports:1:28: -mask is for IPv4 networks; write IPv6 networks as addr/len",
		},
		"NetworkNeedsLength": {
			"/srv -network fd00:1::\n",
			"exports:1:15: -network fd00:1:: needs a prefix length like fd00:1::/64: only IPv4 networks have a class mask",
		},
		"NetworkClassD": {
			"/srv -network 224.1.0.0\n",
			"exports:1:15: -network 224.1.0.0 is a class D address, which has no class mask; give -mask or a /len",
		},
		"NetworkOneNumberHigh": {
			"/srv -network 192\n",
			"exports:1:15: -network 192: FreeBSD mountd reads a one-number network of 128 or more as 0.192.0.0; write the network in full, like 192.0.0.0/8",
		},
		"NetworkLeadingZero": {
			"/srv -network 0.5\n",
			"exports:1:15: -network 0.5: FreeBSD mountd moves a partial network that starts with 0 to the left; write the network in full with a /len",
		},
		"NetworkGarbage": {
			"/srv -network frob\n",
			`exports:1:15: -network needs a network like 10.1.2.0/24 or 10.1.2, got "frob"`,
		},
		"NetworkMissing": {
			"/srv -network\n",
			"exports:1:14: -network needs a network like 10.1.2.0/24, got nothing",
		},
		"NetworkBadLength": {
			"/srv -network 10.0.0.0/33\n",
			`exports:1:24: -network prefix length must be 0 to 32, got "33"`,
		},
		"MappedNetworkTooShort": {
			"/srv ::ffff:10.1.2.0/8(rw)\n",
			`exports:1:6: IPv4-mapped network "::ffff:10.1.2.0/8" needs a prefix length of at least 96 (the mapping prefix), got 8`,
		},
		"MappedNetworkTooShortFreeBSD": {
			"/srv -network ::ffff:10.0.0.0/95\n",
			"exports:1:31: -network ::ffff:10.0.0.0/95 is IPv4-mapped and needs a prefix length of at least 96 (the mapping prefix)",
		},
		"TwoNetworks": {
			"/srv -network 10.0.0.0/8 -network 11.0.0.0/8\n",
			"exports:1:26: only one -network per line; the first is at exports:1:15",
		},
		"HostsAndNetwork": {
			"/srv 127.0.0.1 -network 10.0.0.0/8\n",
			"exports:1:6: a line lists hosts or one -network, not both; write a line for each",
		},
		"UnknownOption": {
			"/srv -frob\n",
			"exports:1:6: unknown FreeBSD export option -frob; known: -alldirs, -compress, -mapall, -maproot, -mask, -network, -o, -quiet, -r, -ro, -sec",
		},
		"UnsupportedOption": {
			"/srv -public\n",
			"exports:1:6: -public is not supported by this server",
		},
		"MaprootMissing": {
			"/srv -maproot\n",
			"exports:1:14: -maproot needs a user like 0, nobody or uid:gid:gid like 1000:1000, got nothing",
		},
		"MaprootUnknownUser": {
			"/srv -maproot=frodo\n",
			`exports:1:15: -maproot user "frodo": unknown user; write uid:gid like 1000:1000 to skip the lookup`,
		},
		"MaprootAndMapall": {
			"/srv -maproot=0:0 -mapall=1:1\n",
			"exports:1:19: -mapall given after -maproot; use one -maproot or -mapall per line",
		},
		"TooManyGroups": {
			"/srv -mapall=1:1:2:3:4:5:6:7:8:9:10:11:12:13:14:15:16:17:18\n",
			"exports:1:14: -mapall lists 18 groups; AUTH_SYS carries at most 16 besides the primary one",
		},
		"BadSec": {
			"/srv -sec=krb5:krb5p\n",
			`exports:1:11: -sec flavor "krb5" is not supported; this server speaks sys (AUTH_SYS)`,
		},
		"UnknownSec": {
			"/srv -sec=sys:frob\n",
			`exports:1:15: -sec flavor "frob" is unknown; flavors are sys, none, krb5, krb5i and krb5p`,
		},
		"RelativePath": {
			"srv/mail\n",
			`exports:1:1: an exports line starts with an absolute directory path like /srv/mail, got "srv/mail"`,
		},
		"DotDot": {
			"/srv/../etc\n",
			`exports:1:1: export path must not contain ".." components, got "/srv/../etc"`,
		},
		"Dot": {
			"\n  /srv/./mail\n",
			`exports:2:3: export path must not contain "." components, got "/srv/./mail"`,
		},
		"DuplicateWorld": {
			"/srv\n# again\n/srv -ro\n",
			"exports:3:1: /srv is already exported to everyone at exports:1:1; a client may appear once per directory",
		},
		"DuplicateHost": {
			"/srv 127.0.0.1\n/srv -ro 127.0.0.1\n",
			"exports:2:1: /srv is already exported to 127.0.0.1 at exports:1:1; a client may appear once per directory",
		},
		"DuplicateHostOneLine": {
			"/srv 127.0.0.1 127.0.0.1\n",
			"exports:1:1: /srv names 127.0.0.1 twice on one line",
		},
		"UnterminatedQuote": {
			"/srv \"/a b\n/ok\n",
			"exports:1:6: quote is not closed before the end of the line",
		},
		"UnterminatedQuoteEOF": {
			"\"/a b",
			"exports:1:1: quote is not closed before the end of the file",
		},
		"NUL": {
			"/srv\x00\n",
			"exports:1:5: NUL byte in exports file",
		},
		"BadOctal": {
			"/srv\\000\n",
			`exports:1:5: octal escape \000 must be a byte from \001 to \377`,
		},
		"HostNameNotResolved": {
			"/srv nosuch.example\n",
			`exports:1:6: cannot resolve host "nosuch.example": no such host`,
		},
		"LinuxWildcardWithoutOptions": {
			// A pattern only Linux accepts makes the line Linux; Linux
			// patterns are not supported.
			"/srv -ro *.example.com\n",
			`exports:1:10: host name wildcards are not supported, got "*.example.com"; use a network like 10.1.2.0/24`,
		},
		"Netgroup": {
			"/srv @friends\n",
			`exports:1:6: netgroups are not supported, got "@friends"; list the hosts or a network`,
		},
		"Wildcard": {
			"/srv *.example.com(rw)\n",
			`exports:1:6: host name wildcards are not supported, got "*.example.com"; use a network like 10.1.2.0/24`,
		},
		"BadHostWord": {
			"/srv 10.0.0.1:2049\n",
			`exports:1:6: expected a host address, network or name, got "10.0.0.1:2049"`,
		},
		"BracketedIPv6": {
			// The hosts.allow form: Linux would read it as a host
			// name wildcard that matches nobody.
			"/srv [fd00::]/64(rw)\n/b -network [fd00::]/64\n/c [fd00::7]\n",
			`exports:1:6: IPv6 addresses are written without brackets in exports, got "[fd00::]/64"; write fd00::/64` + "\n" +
				`exports:2:13: -network [fd00::]/64: IPv6 networks are written without brackets in exports; write -network fd00::/64` + "\n" +
				`exports:3:4: IPv6 addresses are written without brackets in exports, got "[fd00::7]"; write fd00::7`,
		},
		"Scoped": {
			"/srv fe80::1%eth0(rw)\n",
			`exports:1:6: scoped IPv6 addresses are not supported, got "fe80::1%eth0"`,
		},
		"LinuxSpaceBeforeOptions": {
			"/srv/mail 10.0.0.1 (rw)\n",
			"exports:1:20: options (rw) must follow the client with no space: write host(rw), or *(rw) for everyone",
		},
		"LinuxUnknownOption": {
			"/srv 10.0.0.1(rw,frob)\n",
			`exports:1:18: unknown Linux export option "frob"; known: acl, all_squash, anongid, anonuid, async, auth_nlm, compress, crossmnt, fsid, hide, insecure, insecure_locks, mountpoint, mp, no_acl, no_all_squash, no_auth_nlm, no_pnfs, no_root_squash, no_subtree_check, no_wdelay, nocrossmnt, nohide, pnfs, ro, root_squash, rw, sec, secure, secure_locks, security_label, subtree_check, sync, wdelay`,
		},
		"LinuxBadAnonuid": {
			"/srv *(anonuid=x)\n",
			`exports:1:16: anonuid needs a number like anonuid=65534, got "x"`,
		},
		"LinuxMissingParen": {
			"/srv 10.0.0.1(rw\n",
			"exports:1:17: expected ) to close the options of 10.0.0.1",
		},
		"LinuxTwoDirs": {
			"/srv /other 10.0.0.1(rw)\n",
			`exports:1:6: a Linux exports line names one directory, got a second one "/other"`,
		},
		"LinuxBadNetwork": {
			"/srv 10.0.0.0/40(rw)\n",
			`exports:1:6: network "10.0.0.0/40" needs a prefix length from 0 to 32 or a dotted netmask like 255.255.255.0 after the /`,
		},
		"LinuxMountpointsDiffer": {
			"/srv 10.0.0.1(mp) 10.0.0.2(mountpoint=/other)\n",
			"exports:1:28: mountpoint=/other here but mp at exports:1:15; the mount point is per directory, so every client that names one must name the same",
		},
		"LinuxMountpointsDifferAcrossLines": {
			"/srv 10.0.0.1(mp)\n/srv 10.0.0.2(mountpoint=/)\n",
			"exports:2:15: /srv: mount point / here but /srv at exports:1:15; one mount point per directory",
		},
		"LinuxMountpointRelative": {
			"/srv 10.0.0.1(mp=srv)\n",
			`exports:1:18: mp=srv: export path must be absolute, got "srv"`,
		},
		"LinuxMountpointBlank": {
			"/srv 10.0.0.2(rw) 10.0.0.1(mp=/a\\040b)\n",
			`exports:1:31: mp=/a b: the path must not contain blanks, quotes, backslashes, "#", "(" or ")"`,
		},
		"LinuxOptionsWithoutClient": {
			"/srv/mail(rw,no_root_squash)\n",
			`exports:1:1: options need a client before them: write /srv/mail *(rw,no_root_squash) for everyone (quote a path that contains "(")`,
		},
		"LinuxBadSec": {
			"/srv *(sec=krb5p)\n",
			`exports:1:12: sec flavor "krb5p" is not supported; this server speaks sys (AUTH_SYS)`,
		},
		"SeveralErrors": {
			"/a -frob\n/b -network x\n/ok\n",
			"exports:1:4: unknown FreeBSD export option -frob; known: -alldirs, -compress, -mapall, -maproot, -mask, -network, -o, -quiet, -r, -ro, -sec\n" +
				`exports:2:13: -network needs a network like 10.1.2.0/24 or 10.1.2, got "x"`,
		},
		"ErrorColumnAfterContinuation": {
			"/srv \\\n    -mask 1.2.3\n",
			"exports:2:5: -mask needs a -network on the same line",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tab, err := ParseExports("exports", []byte(tc.in), testParseOptions())
			exTrue(t, tab == nil, "table with error")
			exTrue(t, err != nil, "want an error")
			var perrs ParseErrors
			exTrue(t, errors.As(err, &perrs), "want ParseErrors, got", err)
			exEqual(t, tc.want, err.Error())
			var pe *ParseError
			exTrue(t, errors.As(err, &pe), "want a *ParseError inside")
		})
	}
}

// TestParseExportsWarnings checks the warnings of files that load: each
// case's ExportTable.Warnings, as -check-config prints them.
func TestParseExportsWarnings(t *testing.T) {
	cases := map[string]struct {
		in   string
		want []string
	}{
		"Clear": {
			"/a -network 10.1.2.0/24\n/b 127.0.0.1(rw)\n/c /d 127.0.0.1\n/e -ro 127.0.0.1\n/f -rw 10.0.0.0/8\n",
			nil,
		},
		// Read-only by Linux's defaults; builds before d18433f read these
		// lines as FreeBSD's read-write, so an upgrade turned the export
		// read-only without a word.
		"LinuxNoOptions": {
			"/f 10.0.0.0/8\n/g 10.1.0.0/16(rw) *\n",
			[]string{
				"exports:1:4: 10.0.0.0/8 has no options, so it gets Linux's defaults: read-only, root squashed (exports(5)); write 10.0.0.0/8(rw) if its clients deliver mail, or 10.0.0.0/8(ro) to say read-only",
				"exports:2:20: * has no options, so it gets Linux's defaults: read-only, root squashed (exports(5)); write *(rw) if its clients deliver mail, or *(ro) to say read-only",
			},
		},
		"AmbiguousHosts": {
			"# mail\n/srv/mail 10.1.2.3 mx1.example\n",
			[]string{"exports:2:1: read as FreeBSD exports(5): /srv/mail is read-write for 10.1.2.3 mx1.example (root squashed), but Linux reads this line as read-only; " +
				"write /srv/mail 10.1.2.3(ro) mx1.example(ro) for Linux's read-only, or /srv/mail 10.1.2.3(rw) mx1.example(rw) to keep read-write"},
		},
		"ClassfulNetwork": {
			"/srv -network 10.1.2.0\n/u -maproot=0:0 -network 131.104.48 -mask 255.255.255.0\n/v -network=192.168\n",
			[]string{
				"exports:1:15: -network 10.1.2.0 has no -mask or /len, so it gets the class A mask (FreeBSD exports(5)): 10.0.0.0/8; write -network 10.0.0.0/8 to say so, or give the mask you mean (-mask or /len)",
				"exports:3:13: -network 192.168 has no -mask or /len, so it gets the class C mask (FreeBSD exports(5)): 192.168.0.0/24; write -network 192.168.0.0/24 to say so, or give the mask you mean (-mask or /len)",
			},
		},
		"LinuxNetworkShadowed": {
			"/srv 10.0.0.0/8(ro) 10.1.0.0/16(rw,no_root_squash) 10.2.0.0/16(rw)\n/srv 10.1.2.0/24(rw)\n/other 10.1.0.0/16(rw) 10.0.0.0/8(ro)\n",
			[]string{
				"exports:1:21: 10.1.0.0/16 never applies to /srv: 10.0.0.0/8 at exports:1:6 comes first, and Linux gives a client the first network that matches, not the longest (exports(5)); put 10.1.0.0/16 before 10.0.0.0/8 if its options are meant for those clients",
				"exports:1:52: 10.2.0.0/16 never applies to /srv: 10.0.0.0/8 at exports:1:6 comes first, and Linux gives a client the first network that matches, not the longest (exports(5)); put 10.2.0.0/16 before 10.0.0.0/8 if its options are meant for those clients",
				"exports:2:6: 10.1.2.0/24 never applies to /srv: 10.0.0.0/8 at exports:1:6 comes first, and Linux gives a client the first network that matches, not the longest (exports(5)); put 10.1.2.0/24 before 10.0.0.0/8 if its options are meant for those clients",
			},
		},
		"SecFlavorsNotServed": {
			"/a -sec=krb5p:sys 127.0.0.1\n/b 127.0.0.1(rw,sec=none:krb5i)\n/c 127.0.0.1(rw,sec=sys)\n",
			[]string{
				`exports:1:9: -sec flavor "krb5p" is not served: this server speaks sys (AUTH_SYS), which the list also allows, so clients use that`,
				`exports:2:26: sec flavor "krb5i" is not served: this server speaks sys (AUTH_SYS), which the list also allows, so clients use that`,
			},
		},
		"SubtreeCheck": {
			"/a 127.0.0.1(rw,subtree_check) 10.0.0.1(rw,no_subtree_check)\n/b -subtree_check 127.0.0.1(rw)\n",
			[]string{
				"exports:1:17: subtree_check is accepted but not honoured: mailnfsd works as no_subtree_check (Linux's default), so a handle it handed out stays valid for a file moved out of the export on the same file system",
				"exports:2:5: subtree_check is accepted but not honoured: mailnfsd works as no_subtree_check (Linux's default), so a handle it handed out stays valid for a file moved out of the export on the same file system",
			},
		},
		"AmbiguousPlainPath": {
			"\"/srv/my mail\"\n",
			[]string{`exports:1:1: read as FreeBSD exports(5): /srv/my\040mail is read-write for everyone (root squashed), but Linux reads this line as read-only; ` +
				`write /srv/my\040mail *(ro) for Linux's read-only, or /srv/my\040mail *(rw) to keep read-write`},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tab, err := ParseExports("exports", []byte(tc.in), testParseOptions())
			exNoErr(t, err)
			var got []string
			for _, w := range tab.Warnings {
				got = append(got, w.String())
			}
			exEqual(t, tc.want, got)
		})
	}
}

func TestParseExportsTooManyErrors(t *testing.T) {
	in := strings.Repeat("/a -frob\n", 200)
	_, err := ParseExports("exports", []byte(in), nil)
	var perrs ParseErrors
	exTrue(t, errors.As(err, &perrs), "want ParseErrors, got", err)
	exEqual(t, maxParseErrors, len(perrs))
}

func TestLoadExports(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "exports")
	exNoErr(t, os.WriteFile(path, []byte("/srv/mail 127.0.0.1\n/srv/bad -mask x\n"), 0o644))
	_, err := LoadExports(path, nil)
	exTrue(t, err != nil)
	exEqual(t, path+":2:10: -mask needs a -network on the same line", err.Error())

	exNoErr(t, os.WriteFile(path, []byte("/srv/mail 127.0.0.1\n"), 0o644))
	tab, err := LoadExports(path, nil)
	exNoErr(t, err)
	exEqual(t, 1, len(tab.Exports))
	exEqual(t, ExportID("/srv/mail"), tab.Lookup("/srv/mail").ID)
	exTrue(t, tab.Lookup("/srv") == nil, "/srv is not exported")

	_, err = LoadExports(filepath.Join(dir, "missing"), nil)
	exTrue(t, errors.Is(err, os.ErrNotExist), err)
}

func TestExportMatch(t *testing.T) {
	in := "/srv -ro\n" +
		"/srv -network 10.0.0.0/8\n" +
		"/srv -maproot=0:0 -network 10.1.0.0/16\n" +
		"/srv 10.1.2.3\n" +
		"/srv 127.0.0.1(rw,no_root_squash)\n" +
		"/only 127.0.0.1 mx1.example\n" +
		"/ll fe80::/64(rw) fe80:0:0:1::7(ro)\n"
	tab, err := ParseExports("exports", []byte(in), testParseOptions())
	exNoErr(t, err)
	srv, only, ll := tab.Lookup("/srv"), tab.Lookup("/only"), tab.Lookup("/ll")
	cases := []struct {
		export *Export
		addr   string
		line   int // 0: denied
	}{
		{srv, "192.0.2.1", 1},
		{srv, "10.200.0.1", 2},
		{srv, "10.1.9.9", 3},
		{srv, "10.1.2.3", 4},
		{srv, "::ffff:10.1.2.3", 4},
		{srv, "127.0.0.1", 5},
		{srv, "::1", 1},
		{only, "127.0.0.1", 6},
		{only, "10.9.0.1", 6},
		{only, "fd00::1", 6},
		{only, "127.0.0.2", 0},
		{only, "::1", 0},
		// Link-local peers arrive with their zone.
		{ll, "fe80::1%eth0", 7},
		{ll, "fe80:0:0:1::7%eth1", 7},
		{ll, "fe80:0:0:2::1%eth0", 0},
	}
	for _, tc := range cases {
		t.Run(tc.export.Path+"/"+tc.addr, func(t *testing.T) {
			r := tc.export.Match(netip.MustParseAddr(tc.addr))
			if tc.line == 0 {
				exTrue(t, r == nil, "want no rule, got", r)
				return
			}
			exTrue(t, r != nil, "want a rule")
			exEqual(t, tc.line, r.Pos.Line)
		})
	}
	exTrue(t, srv.Groups() == nil, "a world rule makes EXPORT list everyone")
	exEqual(t, []string{"127.0.0.1", "mx1.example"}, only.Groups())
}

// TestExportMatchPrecedence: Linux lines rank clients by type, then by
// order (exports(5)), while FreeBSD lines take the most specific match.
func TestExportMatchPrecedence(t *testing.T) {
	in := "/linux 10.0.0.0/8(ro) 10.1.0.0/16(rw,no_root_squash) 10.1.2.3(rw) *(ro,all_squash)\n" +
		"/linux 10.3.0.0/16(rw)\n" +
		"/bsd -ro -network 10.0.0.0/8\n" +
		"/bsd -maproot=0:0 -network 10.1.0.0/16\n" +
		"/mixed 10.0.0.0/8(ro) 10.1.0.0/16(rw)\n" +
		"/mixed -maproot=0:0 -network 10.1.2.0/24\n" +
		"/mixed -ro -network 10.2.0.0/16\n"
	tab, err := ParseExports("exports", []byte(in), testParseOptions())
	exNoErr(t, err)
	cases := []struct {
		path, addr string
		pos        string // the rule's position; "" for no rule
		ro         bool
		squash     SquashMode
	}{
		// The first network on the line wins, not the longest; a
		// single host outranks every network wherever it stands.
		{"/linux", "10.1.9.9", "exports:1:8", true, SquashRoot},
		{"/linux", "10.1.2.3", "exports:1:54", false, SquashRoot},
		{"/linux", "10.200.0.1", "exports:1:8", true, SquashRoot},
		// A later line's network does not beat an earlier one either.
		{"/linux", "10.3.0.1", "exports:1:8", true, SquashRoot},
		{"/linux", "192.0.2.1", "exports:1:67", true, SquashAll},
		{"/bsd", "10.1.9.9", "exports:4:1", false, SquashRoot},
		{"/bsd", "10.200.0.1", "exports:3:1", true, SquashRoot},
		{"/bsd", "192.0.2.1", "", false, 0},
		// Both dialects: the Linux winner (10.0.0.0/8, first) competes
		// with the FreeBSD lines by specificity.
		{"/mixed", "10.1.2.3", "exports:6:1", false, SquashRoot},
		{"/mixed", "10.1.9.9", "exports:5:8", true, SquashRoot},
		{"/mixed", "10.2.0.1", "exports:7:1", true, SquashRoot},
	}
	for _, tc := range cases {
		t.Run(tc.path+"/"+tc.addr, func(t *testing.T) {
			r := tab.Lookup(tc.path).Match(netip.MustParseAddr(tc.addr))
			if tc.pos == "" {
				exTrue(t, r == nil, "want no rule, got", r)
				return
			}
			exTrue(t, r != nil, "want a rule")
			exEqual(t, tc.pos, r.Pos.String())
			exEqual(t, tc.ro, r.ReadOnly)
			exEqual(t, tc.squash, r.Squash.Mode)
		})
	}

	// The audit's line: 10.1.2.3 gets the first network's ro and root
	// squashing, not the longer prefix's rw,no_root_squash.
	tab, err = ParseExports("exports", []byte("/srv 10.0.0.0/8(ro) 10.1.0.0/16(rw,no_root_squash)\n"), testParseOptions())
	exNoErr(t, err)
	r := tab.Lookup("/srv").Match(netip.MustParseAddr("10.1.2.3"))
	exTrue(t, r != nil && r.ReadOnly && r.Squash.Mode == SquashRoot, "10.1.2.3 got", r)
}

func TestSquashMap(t *testing.T) {
	root := &rpc.AuthSysParms{UID: 0, GID: 0, GIDs: []uint32{0, 5}}
	user := &rpc.AuthSysParms{UID: 1000, GID: 0, GIDs: []uint32{0, 100}}
	nobody := maildirfs.Cred{UID: Nobody, GID: Nobody}
	mapTo := maildirfs.Cred{UID: 5000, GID: 5001, GIDs: []uint32{7}}
	cases := []struct {
		name   string
		squash Squash
		in     *rpc.AuthSysParms
		want   maildirfs.Cred
	}{
		{"DefaultRoot", DefaultSquash(), root, nobody},
		{"DefaultUser", DefaultSquash(), user, maildirfs.Cred{UID: 1000, GID: 0, GIDs: []uint32{0, 100}}},
		{"DefaultNone", DefaultSquash(), nil, nobody},
		{"MaprootRoot", Squash{Mode: SquashRoot, Anon: mapTo}, root, mapTo},
		{"MaprootToRootAuthNone", Squash{Mode: SquashRoot, Anon: maildirfs.Cred{}}, nil, nobody},
		{"MapallUser", Squash{Mode: SquashAll, Anon: mapTo}, user, mapTo},
		{"MapallNone", Squash{Mode: SquashAll, Anon: mapTo}, nil, mapTo},
		{"NoSquashRoot", Squash{Mode: SquashNone, Anon: nobody}, root, maildirfs.Cred{UID: 0, GID: 0, GIDs: []uint32{0, 5}}},
		{"LinuxRootSquashRoot", Squash{Mode: SquashRoot, Anon: mapTo, PerID: true}, root, maildirfs.Cred{UID: 5000, GID: 5001, GIDs: []uint32{5001, 5}}},
		{"LinuxRootSquashGID0", Squash{Mode: SquashRoot, Anon: mapTo, PerID: true}, user, maildirfs.Cred{UID: 1000, GID: 5001, GIDs: []uint32{5001, 100}}},
		{"LinuxAuthNone", Squash{Mode: SquashRoot, Anon: mapTo, PerID: true}, nil, mapTo},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var before []uint32
			if tc.in != nil {
				before = append(before, tc.in.GIDs...)
			}
			got := tc.squash.Map(tc.in)
			exEqual(t, tc.want, got)
			if tc.in != nil {
				exEqual(t, before, tc.in.GIDs, "Map must not modify the request's credential")
			}
			if len(got.GIDs) > 0 && len(tc.squash.Anon.GIDs) > 0 {
				got.GIDs[0] = 999
				exTrue(t, tc.squash.Anon.GIDs[0] != 999, "Map must not alias the rule")
			}
		})
	}
}

// stripPos returns the table without positions, for comparing a table with
// its formatted-and-reparsed copy.
func stripPos(t *ExportTable) string {
	var b strings.Builder
	for _, e := range t.Exports {
		fmt.Fprintf(&b, "%s id=%d compress=%q mountpoint=%q\n", e.Path, e.ID, e.Compress, e.Mountpoint)
		for _, r := range e.Rules {
			c := *r
			c.Pos, c.compressPos = Pos{}, Pos{}
			fmt.Fprintf(&b, "  %+v\n", c)
		}
	}
	return b.String()
}

func FuzzParseExports(f *testing.F) {
	seeds := []string{
		"",
		"/srv/mail\n",
		"# comment\n/srv/mail -network 10.1.2.0 -mask 255.255.255.0\n",
		"/srv/mail -network 192.168.0/24 -alldirs,ro -maproot=0:0\n",
		"/usr /usr/local -maproot=0:10 127.0.0.1 10.0.0.1\n",
		"/u -mapall=1000:1000:20 -network fd00::/64\n",
		"/srv \\\n -network 10.0.0.0 \\\n -mask 255.0.0.0\n",
		"\"/srv/a b\" 127.0.0.1(rw,no_root_squash) *(ro,all_squash,anonuid=5,anongid=6)\n",
		"/srv -rw,sync 10.0.0.0/255.0.0.0 ::1(ro)\n",
		"/srv\\040x 10.0.0.1 (rw)\n",
		"V4: / -sec=sys\n",
		"/a -mask foo\n/b -frob\n\"/c\n",
		"/m -compress=zstd 127.0.0.1\n/m -compress zstd 10.0.0.0/8(rw)\n",
		"/m 127.0.0.1(rw,compress=zstd) *(ro)\n/n -compress=lz4\n",
		"/srv/mail 10.1.2.0/24\n/srv/v6 fd00::/64 ::ffff:10.0.0.0/104\n/u -network 131.104.48\n",
		"/srv 10.0.0.0/8(ro,secure,mp) 10.1.0.0/16(rw,mountpoint=/srv)\n/srv -network 10.2\n",
		"/a -sec=krb5:sys -alldirs 127.0.0.1 10.0.0.0/8\n/b *(subtree_check,insecure,sec=none:krb5p)\n",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	opts := &ParseOptions{
		LookupUser: func(name string) (maildirfs.Cred, error) {
			if id, ok := parseUint32(name); ok {
				return maildirfs.Cred{UID: id, GID: id}, nil
			}
			return maildirfs.Cred{}, errors.New("unknown user")
		},
	}
	f.Fuzz(func(t *testing.T, in string) {
		tab, err := ParseExports("fuzz", []byte(in), opts)
		lines := strings.Count(in, "\n") + 1
		if err != nil {
			exTrue(t, tab == nil, "table with error")
			var perrs ParseErrors
			exTrue(t, errors.As(err, &perrs), "want ParseErrors, got", err)
			exTrue(t, len(perrs) > 0)
			exTrue(t, len(perrs) <= maxParseErrors)
			for _, pe := range perrs {
				exEqual(t, "fuzz", pe.Pos.File)
				exTrue(t, pe.Pos.Line >= 1 && pe.Pos.Line <= lines, "line", pe.Pos.Line, "of", lines)
				exTrue(t, pe.Pos.Col >= 1, pe)
				exTrue(t, pe.Msg != "", pe)
			}
			return
		}
		for _, e := range tab.Exports {
			clean, msg := cleanExportPath(e.Path)
			exEqual(t, "", msg)
			exEqual(t, clean, e.Path)
			exEqual(t, ExportID(e.Path), e.ID)
			exTrue(t, len(e.Rules) > 0)
			exTrue(t, e == tab.Lookup(e.Path))
			e.Groups()
			e.Match(netip.MustParseAddr("127.0.0.1"))
		}
		_ = tab.Summary()
		again, err := ParseExports("formatted", []byte(tab.Format()), opts)
		exNoErr(t, err, "formatted:\n%s", tab.Format())
		exEqual(t, stripPos(tab), stripPos(again))
	})
}

func TestExportsExample(t *testing.T) {
	data, err := os.ReadFile("../exports.example")
	exNoErr(t, err)
	tab, err := ParseExports("exports.example", data, testParseOptions())
	exNoErr(t, err)
	want := "9 exports, 12 rules\n" +
		"/srv/mail\t10.1.2.0/24 rw squash=root->65534:65534 (exports.example:51:1)\n" +
		"/srv/mail\t10.1.3.10,10.1.3.11 rw squash=root->0:0 alldirs (exports.example:55:1)\n" +
		"/srv/archive\t192.168.0.0/16 ro squash=all->5000:5000 (exports.example:59:1)\n" +
		"/srv/spool\t127.0.0.1 rw squash=root->0:65534 (exports.example:62:1)\n" +
		"/srv/queue\t127.0.0.1 rw squash=root->0:65534 (exports.example:62:1)\n" +
		"/srv/mail2\t10.2.0.0/16 rw squash=root->65534:65534 (per id) alldirs (exports.example:68:12)\n" +
		"/srv/mail2\t10.2.0.5 rw squash=none alldirs (exports.example:68:28)\n" +
		"/srv/mail2\tfd00:2::/64 rw squash=all->5000:5000 (per id) alldirs (exports.example:69:12)\n" +
		"/srv/public\t* ro squash=root->65534:65534 (per id) alldirs (exports.example:72:34)\n" +
		"/srv/mail5\t10.5.0.0/16 rw squash=root->65534:65534 (per id) alldirs secure mountpoint=/srv/mail5 (exports.example:82:12)\n" +
		"/srv/mail3\t10.3.0.0/16 rw squash=root->0:0 compress=zstd (exports.example:92:1)\n" +
		"/srv/mail4\t10.4.0.0/16 rw squash=none alldirs compress=zstd (exports.example:93:12)\n"
	exEqual(t, want, tab.Summary())
	exEqual(t, []Warning(nil), tab.Warnings, "the example draws no warnings")
	exEqual(t, "zstd", tab.Lookup("/srv/mail3").Compress)
	exEqual(t, "zstd", tab.Lookup("/srv/mail4").Compress)
	exEqual(t, "", tab.Lookup("/srv/mail").Compress)
}

// TestFreeBSDNoGroup: on a FreeBSD host, FreeBSD-syntax lines squash to
// nobody:nogroup, 65534:65533, as mountd does (UID_NOBODY, GID_NOGROUP):
// root without -maproot, AUTH_NONE callers and "-maproot=user:" (no
// groups). mailnfsd gave 65534:65534 there, a gid FreeBSD's group file
// names nobody, not nogroup. On Linux (nogroup is 65534) they keep 65534,
// and Linux-syntax lines get anongid, 65534, on either host.
func TestFreeBSDNoGroup(t *testing.T) {
	exEqual(t, noGroupFor(runtime.GOOS), bsdNoGroup, "nogroup of this host")
	defer func(g uint32) { bsdNoGroup = g }(bsdNoGroup)
	root := &rpc.AuthSysParms{UID: 0, GID: 0, GIDs: []uint32{0, 5}}
	for _, tc := range []struct {
		goos    string
		nogroup uint32
	}{{"freebsd", 65533}, {"linux", 65534}} {
		t.Run(tc.goos, func(t *testing.T) {
			bsdNoGroup = noGroupFor(tc.goos)
			tab, err := ParseExports("exports", []byte("/a -network 10.0.0.0/8\n/b -maproot=1000: -network 10.0.0.0/8\n/c 10.0.0.0/8(rw)\n"), testParseOptions())
			exNoErr(t, err)
			bsd := maildirfs.Cred{UID: Nobody, GID: tc.nogroup}
			a := tab.Lookup("/a").Rules[0].Squash
			exEqual(t, bsd, a.Map(root), "root on a FreeBSD line")
			exEqual(t, bsd, a.Map(nil), "AUTH_NONE on a FreeBSD line")
			exEqual(t, maildirfs.Cred{UID: 1000, GID: tc.nogroup}, tab.Lookup("/b").Rules[0].Squash.Map(root), "-maproot=1000:")
			linux := maildirfs.Cred{UID: Nobody, GID: Nobody}
			c := tab.Lookup("/c").Rules[0].Squash
			exEqual(t, linux, c.Map(&rpc.AuthSysParms{}), "root on a Linux line")
			exEqual(t, linux, c.Map(nil), "AUTH_NONE on a Linux line")
		})
	}
}
