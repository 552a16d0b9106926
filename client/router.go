package client

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/mailnfs/mailnfs/client/userdb"
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
	c, box, _, err := r.resolve(ctx, user)
	return c, box, err
}

// resolve is Resolve that also returns the user's entry.
func (r *Router) resolve(ctx context.Context, user string) (*Client, string, userdb.Entry, error) {
	e, err := r.db.Lookup(user)
	if err != nil {
		return nil, "", e, err
	}
	route, err := e.Route()
	if err != nil {
		return nil, "", e, err
	}
	key := route.Host + "\x00" + route.Export
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, "", e, ErrClosed
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
		return nil, "", e, fmt.Errorf("client: route %s to %s:%s: %w", user, route.Host, route.Export, ctx.Err())
	}
	if rc.err != nil {
		return nil, "", e, fmt.Errorf("client: route %s to %s:%s: %w", user, route.Host, route.Export, rc.err)
	}
	return rc.c.WithAuth(AuthSys(rc.c.hostname, route.UID, route.GID)), route.Maildir, e, nil
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
	c, box, e, err := r.resolve(ctx, user)
	if err != nil {
		return "", err
	}
	var q Quota
	if e.Fields["quota"] != "" {
		if q, err = ParseQuota(e.Fields["quota"]); err != nil {
			return "", fmt.Errorf("client: user %s: %w", user, err)
		}
	}
	return c.DeliverQuota(ctx, box, msg, q)
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
