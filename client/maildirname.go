package client

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrBadMessageName means a Maildir file name cannot be a message: empty,
// starting with ".", or holding "/" or NUL.
var ErrBadMessageName = errors.New("client: malformed Maildir message name")

// ErrBadFlags means a flag string holds something other than ASCII letters.
var ErrBadFlags = errors.New("client: Maildir flags must be ASCII letters")

// MessageName is a parsed Maildir file name:
//
//	<unique>[:2,<flags>]       unique = time.<id>.<host>[,S=<size>][,W=<vsize>]
//
// Only the documented parts are interpreted (maildir(5), reference.md §7.1,
// §7.2): the ",S=" size field of the unique part and the "2," info.
type MessageName struct {
	Unique string // everything before the first ':'
	Size   int64  // from ",S=", or -1 if absent
	Info   string // after ':' ("2,FS"), empty if none
	Flags  string // the flags of a "2," info, in the order found
	// Extra is the text Dovecot may keep after the flags of a "2," info,
	// from its ',' on (",extra"); it is kept as is (reference.md §7.2).
	Extra string
}

// ParseMessageName parses a file name from new/ or cur/.
func ParseMessageName(name string) (MessageName, error) {
	if name == "" || name[0] == '.' || strings.ContainsAny(name, "/\x00") || len(name) > 255 {
		return MessageName{}, fmt.Errorf("%w: %q", ErrBadMessageName, name)
	}
	m := MessageName{Unique: name, Size: -1}
	if i := strings.IndexByte(name, ':'); i >= 0 {
		m.Unique, m.Info = name[:i], name[i+1:]
		if rest, ok := strings.CutPrefix(m.Info, "2,"); ok {
			// Dovecot may keep more text after a further ','.
			if j := strings.IndexByte(rest, ','); j >= 0 {
				rest, m.Extra = rest[:j], rest[j:]
			}
			m.Flags = rest
		}
	}
	if m.Unique == "" {
		return MessageName{}, fmt.Errorf("%w: %q", ErrBadMessageName, name)
	}
	for _, f := range strings.Split(m.Unique, ",")[1:] {
		if v, ok := strings.CutPrefix(f, "S="); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
				m.Size = n
			}
		}
	}
	return m, nil
}

// HasFlag reports whether flag f is set.
func (m MessageName) HasFlag(f byte) bool { return strings.IndexByte(m.Flags, f) >= 0 }

// NormalizeFlags validates flags and returns them sorted in ASCII order
// without duplicates, as maildir(5) requires ("FS", never "SF").
func NormalizeFlags(flags string) (string, error) {
	seen := map[byte]bool{}
	var out []byte
	for i := 0; i < len(flags); i++ {
		c := flags[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return "", fmt.Errorf("%w: %q", ErrBadFlags, flags)
		}
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return string(out), nil
}

// CurName returns the name a message gets in cur/ with the given (already
// normalised) flags: "<unique>:2,<flags>".
//
// The result may be longer than the 255 bytes a file name may have, when
// unique is close to that already (SetFlags refuses it).
func CurName(unique, flags string) string { return unique + ":2," + flags }

// UniqueName returns a modern Maildir unique name (maildir(5)):
//
//	<seconds>.M<microseconds>P<pid>Q<count>R<32 hex digits>.<host>
//
// from one reading of the clock. R is 16 bytes of crypto/rand, which alone
// makes names unique across front ends; M, P and Q keep them readable and
// ordered. The host has "/" written as \057, ":" as \072 and "," as \054,
// so the name parses unambiguously.
func UniqueName(now time.Time, pid int, count uint64, host string) string {
	var r [16]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("%d.M%dP%dQ%dR%s.%s", now.Unix(), now.Nanosecond()/1000, pid, count,
		hex.EncodeToString(r[:]), EscapeHost(host))
}

// EscapeHost makes a host name safe for a Maildir name.
func EscapeHost(host string) string {
	if host == "" {
		host = "localhost"
	}
	r := strings.NewReplacer("/", `\057`, ":", `\072`, ",", `\054`)
	host = r.Replace(host)
	if host[0] == '.' {
		host = `\056` + host[1:]
	}
	return host
}
