package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailnfs/mailnfs/client/userdb"
	"github.com/mailnfs/mailnfs/internal/nfs3"
)

// Router delivers to users looked up in a compiled userdb. It keeps one
// Client (one mount, one connection pool) per storage box and export and
// sends each user's calls with that user's AUTH_SYS uid and gid. It is safe
// for concurrent use; Close closes every Client it opened.
type Router struct {
	db   *userdb.DB
	opts Options
	// Adjust, if set, may change the Target of a route before dialling
	// (ports in tests, nconnect).
	Adjust func(*Target)

	mu      sync.Mutex
	clients map[string]*routeConn // by host + export
	closed  bool
	// closing ends with Close: it cancels the dials in progress, which
	// dials waits for.
	closing    context.Context
	closeDials context.CancelFunc
	dials      sync.WaitGroup
}

// routeConn is the Client of one storage box and export, or the dial
// that is making it: ready is closed once c or err is set.
type routeConn struct {
	ready chan struct{}
	c     *Client
	err   error
	// askPorts: the ports came from the box's portmapper (the route
	// named none), so they may be asked again (recheckPorts).
	askPorts bool
	checked  atomic.Int64 // unix nanoseconds of the last recheckPorts
}

// NewRouter returns a Router over db; opts are used for every Dial (their
// Auth is ignored: each user's ids are used).
func NewRouter(db *userdb.DB, opts Options) *Router {
	opts.Auth = nil
	r := &Router{db: db, opts: opts, clients: map[string]*routeConn{}}
	r.closing, r.closeDials = context.WithCancel(context.Background())
	return r
}

// Resolve returns a client view for user (with the user's credential) and
// the Maildir path inside its export. A storage box is dialled once, when
// a caller first needs it, in the background and bounded by
// routerDialTimeout rather than by that caller's deadline; every caller
// bound for the box waits for it until its own deadline, and callers
// bound for other boxes do not wait at all. A failed dial is tried again
// by the next caller.
func (r *Router) Resolve(ctx context.Context, user string) (*Client, string, error) {
	c, box, _, _, err := r.resolve(ctx, user)
	return c, box, err
}

// resolve is Resolve that also returns the user's entry and route.
func (r *Router) resolve(ctx context.Context, user string) (*Client, string, userdb.Entry, *routeConn, error) {
	e, err := r.db.Lookup(user)
	if err != nil {
		return nil, "", e, nil, err
	}
	route, err := e.Route()
	if err != nil {
		return nil, "", e, nil, err
	}
	key := route.Host + "\x00" + route.Export
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, "", e, nil, ErrClosed
	}
	rc := r.clients[key]
	if rc == nil {
		rc = &routeConn{ready: make(chan struct{})}
		r.clients[key] = rc
		r.dials.Add(1)
		r.mu.Unlock()
		go r.dial(ctx, key, route, rc)
	} else {
		r.mu.Unlock()
	}
	select {
	case <-rc.ready:
	case <-ctx.Done():
		return nil, "", e, nil, fmt.Errorf("client: route %s to %s:%s: %w", user, route.Host, route.Export, ctx.Err())
	}
	if rc.err != nil {
		return nil, "", e, nil, fmt.Errorf("client: route %s to %s:%s: %w", user, route.Host, route.Export, rc.err)
	}
	return rc.c.WithAuth(AuthSys(rc.c.hostname, route.UID, route.GID)), route.Maildir, e, rc, nil
}

// portRecheck is how often a box that cannot be reached has its
// portmapper asked whether its ports moved.
const portRecheck = 5 * time.Second

// recheckPorts is called when a call to rc's box failed for want of a
// connection (ErrDisconnected). The Client redials the ports it found at
// Dial for ever; a box that came back on other ports (a changed
// -nfs-port, a restart under rpcbind) would never be reached again. So
// the portmapper is asked (at most every portRecheck), and if it names
// other ports the route is dropped: the next caller dials the box anew,
// and the old Client, whose calls all fail, is closed.
func (r *Router) recheckPorts(rc *routeConn) {
	now := time.Now().UnixNano()
	last := rc.checked.Load()
	if !rc.askPorts || now-last < int64(portRecheck) || !rc.checked.CompareAndSwap(last, now) {
		return
	}
	old := rc.c.Target()
	ctx, cancel := context.WithTimeout(r.closing, cleanupTimeout)
	defer cancel()
	nfsPort, err := GetPort(ctx, old.PortmapAddr(), nfs3.Program, nfs3.Version, nil)
	if err != nil {
		return // the box is down altogether: the Client redials
	}
	mountPort, err := GetPort(ctx, old.PortmapAddr(), nfs3.MountProgram, nfs3.MountV3, nil)
	if err != nil || (nfsPort == old.NFSPort && mountPort == old.MountPort) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, x := range r.clients {
		if x == rc {
			rc.c.log.Warn("client: box moved to other ports, dialling it anew", "host", old.Host, "nfs_port", nfsPort, "mount_port", mountPort, "old_nfs_port", old.NFSPort, "old_mount_port", old.MountPort)
			delete(r.clients, k)
			r.dials.Add(1)
			go func() {
				defer r.dials.Done()
				rc.c.Close()
			}()
		}
	}
}

// routerDialTimeout bounds a Router's dial of a storage box. The dial is
// not bound to the deadline of the caller that started it: every caller
// bound for the box waits for it, each until its own deadline.
const routerDialTimeout = 30 * time.Second

// dial makes rc's Client and publishes it; a failed dial is dropped from
// the map so that the next caller tries again. Close cancels it.
func (r *Router) dial(ctx context.Context, key string, route userdb.Route, rc *routeConn) {
	defer r.dials.Done()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), routerDialTimeout)
	defer cancel()
	defer context.AfterFunc(r.closing, cancel)()
	c, err := func() (*Client, error) {
		t, err := ParseURL(route.URL())
		if err != nil {
			return nil, err
		}
		if r.Adjust != nil {
			r.Adjust(&t)
		}
		rc.askPorts = t.NFSPort == 0 && t.MountPort == 0
		// The mount itself is done as the user; later calls switch
		// credentials per user through WithAuth.
		return DialTarget(ctx, t, r.opts)
	}()
	r.mu.Lock()
	var late *Client // dialled after Close: closed here, outside the lock
	switch {
	case err != nil:
		delete(r.clients, key)
	case r.closed:
		late, c, err = c, nil, ErrClosed
	}
	rc.c, rc.err = c, err
	close(rc.ready)
	r.mu.Unlock()
	if late != nil {
		late.Close()
	}
}

// Deliver stores the message in user's Maildir (see Client.Deliver),
// within the Maildir++ quota of the user's quota= field if there is one
// (Client.DeliverQuota; a field that does not parse is an error).
func (r *Router) Deliver(ctx context.Context, user string, msg io.Reader) (string, error) {
	c, box, e, rc, err := r.resolve(ctx, user)
	if err != nil {
		return "", err
	}
	var q Quota
	if e.Fields["quota"] != "" {
		if q, err = ParseQuota(e.Fields["quota"]); err != nil {
			return "", fmt.Errorf("client: user %s: %w", user, err)
		}
	}
	name, err := c.DeliverQuota(ctx, box, msg, q)
	if errors.Is(err, ErrDisconnected) {
		r.recheckPorts(rc)
	}
	return name, err
}

// Close closes every Client the Router opened, all at once (each sends
// UMNT, bounded by 2 s, to a box that may not answer), and ends the dials
// in progress; it returns when they are done. Calls still running fail.
func (r *Router) Close() error {
	r.mu.Lock()
	r.closed = true
	var open []*Client
	for k, rc := range r.clients {
		select {
		case <-rc.ready:
			if rc.c != nil {
				open = append(open, rc.c)
			}
		default:
			// A dial still running closes its own.
		}
		delete(r.clients, k)
	}
	r.mu.Unlock()
	r.closeDials()
	var wg sync.WaitGroup
	for _, c := range open {
		wg.Go(func() { c.Close() })
	}
	wg.Wait()
	r.dials.Wait()
	return nil
}
