package nfsd

import (
	"strings"

	"github.com/mailnfs/mailnfs/maildirfs"
)

// linuxOptions are the Linux exports(5) options the parser accepts. Those
// mapped to false are accepted and ignored: this server is always sync,
// never hides or crosses mounts, has no NLM, and derives fsid itself.
// insecure is the default here (source ports are checked only where a
// line says secure).
var linuxOptions = map[string]bool{
	"ro": true, "rw": true, "root_squash": true, "no_root_squash": true,
	"all_squash": true, "no_all_squash": true, "anonuid": true, "anongid": true,
	"sec": true, "compress": true, "secure": true, "mountpoint": true, "mp": true,
	"sync": false, "async": false, "insecure": false,
	"subtree_check": false, "no_subtree_check": false, "wdelay": false, "no_wdelay": false,
	"hide": false, "nohide": false, "crossmnt": false, "nocrossmnt": false, "fsid": false,
	"no_acl": false, "acl": false,
	"insecure_locks": false, "secure_locks": false, "no_auth_nlm": false, "auth_nlm": false,
	"pnfs": false, "no_pnfs": false, "security_label": false,
}

// linuxOpts is the option state for one Linux client.
type linuxOpts struct {
	readOnly bool
	squash   SquashMode
	anonUID  uint32
	anonGID  uint32
	// secure is set by an explicit "secure" (and cleared by "insecure").
	secure bool
	// mp is a mountpoint (mp) option: mpSet, the path ("" for the export's
	// own) and where it was written. The parser moves it to
	// Export.Mountpoint, which is per path.
	mp    string
	mpSet bool
	mpPos Pos
	// compress is the compress= value, written at compressPos (valid
	// only if compress is set).
	compress    string
	compressPos Pos
}

func defaultLinuxOpts() linuxOpts {
	// Linux defaults: ro, root_squash, anonuid=anongid=65534.
	return linuxOpts{readOnly: true, squash: SquashRoot, anonUID: Nobody, anonGID: Nobody}
}

func (o linuxOpts) rule(pos Pos, clients []Client) *Rule {
	sq := Squash{Mode: o.squash, Anon: maildirfs.Cred{UID: o.anonUID, GID: o.anonGID}, PerID: true}
	cpos := pos
	if o.compress != "" {
		cpos = o.compressPos
	}
	return &Rule{Pos: pos, Dialect: Linux, Clients: clients, ReadOnly: o.readOnly, Squash: sq, AllDirs: true,
		Secure: o.secure, compress: o.compress, compressPos: cpos}
}

// linuxLine parses the part of a Linux line after its directory: clients
// each with "(options)" attached, and "-options" words that set the
// defaults for the clients after them.
func (p *parser) linuxLine(linePos Pos, toks []token) ([]*Rule, bool) {
	defaults := defaultLinuxOpts()
	sawDefaults := false
	var rules []*Rule
	for _, t := range toks {
		switch {
		case !t.literal && strings.HasPrefix(t.text, "-"):
			if !p.linuxOptions(&defaults, t.text[1:], t.pos.add(1)) {
				return nil, false
			}
			sawDefaults = true
			continue
		case !t.literal && strings.HasPrefix(t.text, "("):
			p.errorf(t.pos, "options %s must follow the client with no space: write host%s, or *%s for everyone", t.text, t.text, t.text)
			return nil, false
		}
		host, opts, hasOpts := strings.Cut(t.text, "(")
		o := defaults
		if hasOpts {
			if !strings.HasSuffix(opts, ")") {
				p.errorf(t.pos.add(len(t.text)), "expected ) to close the options of %s", host)
				return nil, false
			}
			if !p.linuxOptions(&o, strings.TrimSuffix(opts, ")"), t.pos.add(len(host)+1)) {
				return nil, false
			}
		}
		if !hasOpts && !sawDefaults {
			// As exportfs warns ("No options for ..."). mailnfsd read
			// such a line as FreeBSD's, read-write, before d18433f, so
			// after an upgrade its clients' writes fail with ROFS.
			p.warnf(t.pos, "%s has no options, so it gets Linux's defaults: read-only, root squashed (exports(5)); write %s(rw) if its clients deliver mail, or %s(ro) to say read-only",
				t.text, t.text, t.text)
		}
		if o.mpSet && !p.lineMountpoint(o) {
			return nil, false
		}
		var clients []Client
		if host != "*" {
			c, ok := p.parseHostClient(t, host)
			if !ok {
				return nil, false
			}
			clients = []Client{c}
		}
		rules = append(rules, o.rule(t.pos, clients))
	}
	if len(rules) == 0 {
		// A path with only defaults (or nothing): everyone, as exportfs does.
		if defaults.mpSet && !p.lineMountpoint(defaults) {
			return nil, false
		}
		rules = append(rules, defaults.rule(linePos, nil))
	}
	return rules, true
}

// lineMountpoint records a client's mountpoint option for the line being
// parsed (parser.mp). It is per path: two clients asking for different
// mount points is an error.
func (p *parser) lineMountpoint(o linuxOpts) bool {
	if p.mp.set && p.mp.path != o.mp {
		p.errorf(o.mpPos, "%s here but %s at %s; the mount point is per directory, so every client that names one must name the same", mpText(o.mp), mpText(p.mp.path), p.mp.pos)
		return false
	}
	p.mp.set, p.mp.path, p.mp.pos = true, o.mp, o.mpPos
	return true
}

// mpText names a mountpoint option for messages: "mp" for the export's
// own directory, else "mountpoint=PATH".
func mpText(path string) string {
	if path == "" {
		return "mp"
	}
	return "mountpoint=" + path
}

// linuxOptions applies a comma-separated Linux option list to o.
func (p *parser) linuxOptions(o *linuxOpts, text string, pos Pos) bool {
	allSquash, noRootSquash := o.squash == SquashAll, o.squash == SquashNone
	for _, part := range splitOptions(text, pos) {
		name, val, hasVal := strings.Cut(part.text, "=")
		valPos := part.pos.add(len(name) + 1)
		if _, known := linuxOptions[name]; !known {
			if name == "" {
				p.errorf(part.pos, "empty option; options look like rw,no_root_squash")
			} else {
				p.errorf(part.pos, "unknown Linux export option %q; known: %s", name, strings.Join(sortedLinuxOptions(), ", "))
			}
			return false
		}
		switch name {
		case "ro":
			o.readOnly = true
		case "rw":
			o.readOnly = false
		case "root_squash":
			noRootSquash = false
		case "no_root_squash":
			noRootSquash = true
		case "subtree_check":
			p.warnf(part.pos, "subtree_check is accepted but not honoured: mailnfsd works as no_subtree_check (Linux's default), so a handle it handed out stays valid for a file moved out of the export on the same file system")
		case "secure":
			o.secure = true
		case "insecure":
			o.secure = false
		case "mountpoint", "mp":
			v := ""
			if hasVal {
				clean, msg := cleanExportPath(val)
				switch {
				case msg != "":
					p.errorf(valPos, "%s=%s: %s", name, val, msg)
					return false
				case quoteExportPath(clean) != clean || strings.Contains(clean, ")"):
					p.errorf(valPos, "%s=%s: the path must not contain blanks, quotes, backslashes, \"#\", \"(\" or \")\"", name, val)
					return false
				}
				v = clean
			}
			o.mp, o.mpSet, o.mpPos = v, true, part.pos
		case "all_squash":
			allSquash = true
		case "no_all_squash":
			allSquash = false
		case "anonuid", "anongid":
			id, ok := parseID(val)
			if !hasVal || !ok {
				p.errorf(valPos, "%s needs a number like %s=65534, got %q", name, name, val)
				return false
			}
			if name == "anonuid" {
				o.anonUID = id
			} else {
				o.anonGID = id
			}
		case "sec":
			if !p.checkFlavors("sec", optPart{text: val, pos: valPos}) {
				return false
			}
		case "compress":
			cv := optPart{text: val, pos: valPos}
			if !hasVal {
				cv.pos = part.pos.add(len(name))
			}
			if !p.checkCompress("compress", cv, hasVal) {
				return false
			}
			o.compress, o.compressPos = val, part.pos
		}
	}
	switch {
	case allSquash:
		o.squash = SquashAll
	case noRootSquash:
		o.squash = SquashNone
	default:
		o.squash = SquashRoot
	}
	return true
}

func sortedLinuxOptions() []string {
	m := make(map[string]bool, len(linuxOptions))
	for k := range linuxOptions {
		m[k] = true
	}
	return sortedKeys(m)
}
