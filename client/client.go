package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/portmap"
)

// Options configure Dial. The zero value is usable.
type Options struct {
	// RPC configures the NFS transport (pool size, timeouts).
	RPC RPCOptions
	// Auth overrides the credential. Nil means AUTH_SYS with the URL's uid
	// and gid, or the process's own when the URL has none.
	Auth *Auth
	// Hostname is the machine name in AUTH_SYS credentials and the host
	// part of Maildir unique names. Empty means os.Hostname().
	Hostname string
	// Logger receives debug and warn events. Nil discards them.
	Logger *slog.Logger
}

// ErrBadURL means an nfs:// URL could not be parsed.
var ErrBadURL = errors.New("client: bad nfs URL")

// Target is a parsed nfs:// URL.
type Target struct {
	Host        string // host name or address, no brackets
	PortmapPort int    // port of the portmapper; 111 unless the URL names one
	Path        string // the path after the host: an export or a directory inside one
	NFSPort     int    // 0: ask the portmapper
	MountPort   int    // 0: ask the portmapper
	UID, GID    *uint32
	Conns       int // nconnect=N: pool size, 0 = default
}

// ParseURL parses a libnfs-style URL:
//
//	nfs://host[:port]/export/path?version=3&nfsport=P&mountport=P&uid=N&gid=N
//
// The optional :port is the portmapper's port (default 111); nfsport and
// mountport skip the portmapper for that program. version must be 3 if
// given. nconnect=N sets the connection pool size. Unknown parameters are
// errors, so a typo does not silently change behaviour. IPv6 hosts go in
// brackets, nfs://[::1]:111/export, or bare as libnfs writes them (libnfs
// 4.0 refuses brackets): nfs://::1/export, a host that is an IPv6 address
// as a whole, then without a port.
func ParseURL(s string) (Target, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Target{}, fmt.Errorf("%w %q: %v", ErrBadURL, s, err)
	}
	if u.Scheme != "nfs" {
		return Target{}, fmt.Errorf("%w %q: scheme must be nfs", ErrBadURL, s)
	}
	if u.Host == "" {
		return Target{}, fmt.Errorf("%w %q: no host", ErrBadURL, s)
	}
	host, port := u.Hostname(), u.Port()
	if a, err := netip.ParseAddr(u.Host); err == nil && a.Is6() {
		// Bare IPv6 (url.Parse took its last group for a port).
		host, port = u.Host, ""
	}
	t := Target{Host: host, PortmapPort: portmap.Port, Path: path.Clean("/" + u.Path)}
	if t.Host == "" {
		return Target{}, fmt.Errorf("%w %q: no host", ErrBadURL, s)
	}
	if p := port; p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return Target{}, fmt.Errorf("%w %q: bad port %q", ErrBadURL, s, p)
		}
		t.PortmapPort = n
	}
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		num := func(max uint64) (uint64, error) {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil || n > max {
				return 0, fmt.Errorf("%w %q: bad %s=%q", ErrBadURL, s, k, v)
			}
			return n, nil
		}
		switch k {
		case "version":
			if v != "3" {
				return Target{}, fmt.Errorf("%w %q: only NFS version 3 is supported", ErrBadURL, s)
			}
		case "nfsport", "mountport":
			n, err := num(65535)
			if err != nil {
				return Target{}, err
			}
			if k == "nfsport" {
				t.NFSPort = int(n)
			} else {
				t.MountPort = int(n)
			}
		case "uid", "gid":
			n, err := num(1<<32 - 1)
			if err != nil {
				return Target{}, err
			}
			v32 := uint32(n)
			if k == "uid" {
				t.UID = &v32
			} else {
				t.GID = &v32
			}
		case "nconnect":
			n, err := num(64)
			if err != nil {
				return Target{}, err
			}
			t.Conns = int(n)
		default:
			return Target{}, fmt.Errorf("%w %q: unknown parameter %q", ErrBadURL, s, k)
		}
	}
	return t, nil
}

// PortmapAddr returns host:port of the portmapper.
func (t Target) PortmapAddr() string { return net.JoinHostPort(t.Host, strconv.Itoa(t.PortmapPort)) }

// Client is a mounted NFSv3 export. Its methods are safe for concurrent
// use; all calls share one pipelined RPCClient.
type Client struct {
	rpc       *RPCClient
	auth      Auth
	target    Target
	mountAddr string
	mntPath   string // the path given to MNT
	root      *mountRoot
	hostname  string
	log       *slog.Logger

	rtmax, wtmax, dtpref uint32

	deliveries *atomic.Uint64 // Maildir Q counter, shared with WithAuth views
	mdc        *maildirCache  // Maildir handles, shared with WithAuth views
	// renameGrace: how long Deliver waits past its deadline for the
	// reply to its RENAME (see withReplyGrace); tests shorten it.
	renameGrace time.Duration
}

// Dial mounts the export named by rawURL (see ParseURL) and connects to its
// NFS server. Ports come from the URL or the portmapper. If MNT of the full
// path is refused, Dial mounts the longest exported prefix (from EXPORT) and
// looks the rest up, so a URL can name a Maildir inside an export.
func Dial(ctx context.Context, rawURL string, opts Options) (*Client, error) {
	t, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return DialTarget(ctx, t, opts)
}

// DialTarget is Dial for a parsed Target.
func DialTarget(ctx context.Context, t Target, opts Options) (*Client, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host := opts.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	var auth Auth
	if opts.Auth != nil {
		auth = *opts.Auth
	} else {
		uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
		if t.UID != nil {
			uid = *t.UID
		}
		if t.GID != nil {
			gid = *t.GID
		}
		auth = AuthSys(host, uid, gid)
	}
	if t.MountPort == 0 {
		p, err := GetPort(ctx, t.PortmapAddr(), nfs3.MountProgram, nfs3.MountV3, nil)
		if err != nil {
			return nil, fmt.Errorf("client: find MOUNT port: %w", err)
		}
		t.MountPort = p
	}
	if t.NFSPort == 0 {
		p, err := GetPort(ctx, t.PortmapAddr(), nfs3.Program, nfs3.Version, nil)
		if err != nil {
			return nil, fmt.Errorf("client: find NFS port: %w", err)
		}
		t.NFSPort = p
	}
	c := &Client{
		auth:        auth,
		target:      t,
		mountAddr:   net.JoinHostPort(t.Host, strconv.Itoa(t.MountPort)),
		hostname:    host,
		log:         log,
		root:        new(mountRoot),
		deliveries:  new(atomic.Uint64),
		mdc:         new(maildirCache),
		renameGrace: renameGrace,
	}
	mnt, rest, err := c.mount(ctx)
	if err != nil {
		return nil, err
	}
	ropts := opts.RPC
	if ropts.Logger == nil {
		ropts.Logger = log
	}
	if t.Conns > 0 {
		ropts.Conns = t.Conns
	}
	c.rpc, err = DialRPC(ctx, net.JoinHostPort(t.Host, strconv.Itoa(t.NFSPort)), ropts)
	if err != nil {
		return nil, err
	}
	c.root.sub = rest
	root, err := c.rootFrom(ctx, mnt.Handle)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.root.fh.Store(&root)
	info, err := c.FSInfo(ctx, root)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.rtmax, c.wtmax, c.dtpref = clampIO(info.Rtmax), clampIO(info.Wtmax), info.Dtpref
	if c.dtpref == 0 || c.dtpref > 64<<10 {
		c.dtpref = 32 << 10
	}
	// A READ or READDIR reply must fit the record bound: the reader
	// refuses a larger one and the call, resent on the new connection,
	// would draw the same reply until its deadline.
	lim := uint32(max(c.rpc.opts.MaxRecord-replyRoom, 4096))
	c.rtmax, c.dtpref = min(c.rtmax, lim), min(c.dtpref, lim)
	return c, nil
}

// replyRoom is what a READ reply holds besides its data: the RPC reply
// header (with a verifier of up to 400 bytes), status, attributes, count
// and eof, rounded up.
const replyRoom = 1024

func clampIO(n uint32) uint32 {
	switch {
	case n == 0:
		return 32 << 10
	case n > nfs3.MaxIO:
		return nfs3.MaxIO
	}
	return n
}

// mount MNTs the target path, or the longest exported prefix of it; rest is
// the remainder to LOOKUP.
func (c *Client) mount(ctx context.Context) (MountResult, string, error) {
	p := c.target.Path
	res, err := Mnt(ctx, c.mountAddr, c.auth, p)
	if err == nil {
		c.mntPath = p
		return res, "", nil
	}
	var ce *Error
	if !errors.As(err, &ce) || ce.RPC != nil {
		return MountResult{}, "", err
	}
	exports, xerr := Exports(ctx, c.mountAddr, c.auth)
	if xerr != nil {
		return MountResult{}, "", err
	}
	best := ""
	for _, x := range exports {
		d := path.Clean(x.Dir)
		if (p == d || strings.HasPrefix(p, strings.TrimSuffix(d, "/")+"/")) && len(d) > len(best) {
			best = d
		}
	}
	if best == "" || best == p {
		return MountResult{}, "", err
	}
	res, err2 := Mnt(ctx, c.mountAddr, c.auth, best)
	if err2 != nil {
		return MountResult{}, "", fmt.Errorf("%w (and MNT of export %s: %v)", err, best, err2)
	}
	c.mntPath = best
	return res, strings.TrimPrefix(strings.TrimPrefix(p, best), "/"), nil
}

// mountRoot is the handle of the URL's path, shared by a Client and its
// WithAuth views; remount replaces it.
type mountRoot struct {
	fh  atomic.Pointer[[]byte]
	sub string     // the URL's path below the MNT dirpath, looked up from its handle
	mu  sync.Mutex // serialises remount
}

// rootFH returns the root handle in use.
func (c *Client) rootFH() []byte { return *c.root.fh.Load() }

// rootFrom returns the handle of the URL's path given the handle MNT
// returned.
func (c *Client) rootFrom(ctx context.Context, mnt []byte) ([]byte, error) {
	if c.root.sub == "" {
		return mnt, nil
	}
	fh, _, err := c.LookupPathFrom(ctx, mnt, c.root.sub)
	return fh, err
}

// remount MNTs the export again and replaces the root handle old, which
// the server answered STALE or BADHANDLE (the box restarted with a new
// handle key, or the export directory was replaced): a long-lived client
// (a Router's) would otherwise fail every call until it was made anew.
// Every cached Maildir handle is dropped with it. A caller that finds the
// root already replaced (another caller remounted) does nothing.
func (c *Client) remount(ctx context.Context, old []byte) error {
	c.root.mu.Lock()
	defer c.root.mu.Unlock()
	if !bytes.Equal(c.rootFH(), old) {
		return nil
	}
	res, err := Mnt(ctx, c.mountAddr, c.auth, c.mntPath)
	if err != nil {
		return &remountError{err}
	}
	root, err := c.rootFrom(ctx, res.Handle)
	if err != nil {
		return &remountError{err}
	}
	c.root.fh.Store(&root)
	c.mdc.mu.Lock()
	clear(c.mdc.m)
	c.mdc.mu.Unlock()
	c.log.Warn("client: root handle stale, remounted", "addr", c.mountAddr, "path", c.mntPath, "changed", !bytes.Equal(root, old))
	return nil
}

// Close sends UMNT (best effort) and closes the connections, stopping every
// goroutine of the client.
func (c *Client) Close() error {
	if c.mntPath != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := Umnt(ctx, c.mountAddr, c.auth, c.mntPath); err != nil {
			c.log.Debug("client: UMNT failed", "path", c.mntPath, "err", err)
		}
		cancel()
	}
	if c.rpc != nil {
		return c.rpc.Close()
	}
	return nil
}

// Root returns the handle of the URL's path.
func (c *Client) Root() []byte { return c.rootFH() }

// Target returns the parsed URL with the ports that were found.
func (c *Client) Target() Target { return c.target }

// Auth returns the credential the client sends.
func (c *Client) Auth() Auth { return c.auth }

// WithAuth returns a view of c that sends auth on every call; it shares
// c's connections, so it must not outlive c and needs no Close of its own.
func (c *Client) WithAuth(auth Auth) *Client {
	v := *c // every shared part is a pointer
	v.auth = auth
	return &v
}

// MaxWrite and MaxRead return the transfer sizes in use (FSINFO wtmax and
// rtmax, capped at 1 MiB).
func (c *Client) MaxWrite() int { return int(c.wtmax) }

// MaxRead returns the largest READ count the client sends.
func (c *Client) MaxRead() int { return int(c.rtmax) }
