package client

import (
	"context"
	"fmt"
	"io"
	"sync"

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
	clients map[string]*Client // by host + export
	closed  bool
}

// NewRouter returns a Router over db; opts are used for every Dial (their
// Auth is ignored: each user's ids are used).
func NewRouter(db *userdb.DB, opts Options) *Router {
	opts.Auth = nil
	return &Router{db: db, opts: opts, clients: map[string]*Client{}}
}

// Resolve returns a client view for user (with the user's credential) and
// the Maildir path inside its export.
func (r *Router) Resolve(ctx context.Context, user string) (*Client, string, error) {
	e, err := r.db.Lookup(user)
	if err != nil {
		return nil, "", err
	}
	route, err := e.Route()
	if err != nil {
		return nil, "", err
	}
	key := route.Host + "\x00" + route.Export
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, "", ErrClosed
	}
	c := r.clients[key]
	if c == nil {
		t, err := ParseURL(route.URL())
		if err != nil {
			return nil, "", err
		}
		if r.Adjust != nil {
			r.Adjust(&t)
		}
		// The mount itself is done as the user; later calls switch
		// credentials per user through WithAuth.
		c, err = DialTarget(ctx, t, r.opts)
		if err != nil {
			return nil, "", fmt.Errorf("client: route %s to %s:%s: %w", user, route.Host, route.Export, err)
		}
		r.clients[key] = c
	}
	return c.WithAuth(AuthSys(c.hostname, route.UID, route.GID)), route.Maildir, nil
}

// Deliver stores the message in user's Maildir (see Client.Deliver),
// within the Maildir++ quota of the user's quota= field if there is one
// (Client.DeliverQuota; a field that does not parse is an error).
func (r *Router) Deliver(ctx context.Context, user string, msg io.Reader) (string, error) {
	c, box, err := r.Resolve(ctx, user)
	if err != nil {
		return "", err
	}
	var q Quota
	if e, err := r.db.Lookup(user); err == nil && e.Fields["quota"] != "" {
		if q, err = ParseQuota(e.Fields["quota"]); err != nil {
			return "", fmt.Errorf("client: user %s: %w", user, err)
		}
	}
	return c.DeliverQuota(ctx, box, msg, q)
}

// Close closes every Client the Router opened.
func (r *Router) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for k, c := range r.clients {
		c.Close()
		delete(r.clients, k)
	}
	return nil
}
