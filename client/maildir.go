package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailnfs/mailnfs/internal/nfs3"
)

// MaxMessageSize bounds one delivery; Deliver reads the message into memory
// to know its size (for ",S=") before naming it.
const MaxMessageSize = 256 << 20

// ErrMessageTooLarge means a message exceeded MaxMessageSize.
var ErrMessageTooLarge = errors.New("client: message exceeds MaxMessageSize")

// ErrNoMessage means no message with the given key is in new/ or cur/.
var ErrNoMessage = errors.New("client: no such message")

// TmpMaxAge is how old a file in tmp/ must be before CleanTmp removes it
// (maildir(5): 36 hours).
const TmpMaxAge = 36 * time.Hour

// maildirHandles are the cached handles of one Maildir.
type maildirHandles struct {
	root, tmp, new, cur []byte
	// folder: a dotted name holding a maildirfolder file, a Maildir++
	// folder whose quota its parent keeps (quotaRoot).
	folder bool
}

type maildirCache struct {
	mu sync.Mutex
	m  map[string]*maildirHandles
}

// maildir resolves mailbox (a path relative to the client's root) and its
// tmp, new and cur directories, caching the handles (reference.md §7.6
// step 1). A STALE answer anywhere drops the cache entry (dropMaildir).
func (c *Client) maildir(ctx context.Context, mailbox string) (*maildirHandles, error) {
	key := path.Clean("/" + mailbox)
	c.mdc.mu.Lock()
	h := c.mdc.m[key]
	c.mdc.mu.Unlock()
	if h != nil {
		return h, nil
	}
	root, attr, err := c.LookupPath(ctx, key)
	if err != nil {
		return nil, err
	}
	if attr.Type != nfs3.TypeDir {
		return nil, fmt.Errorf("client: maildir %s: %w", mailbox, statusErr(nfs3.ProcLookup, key, nfs3.StatusNotDir))
	}
	h = &maildirHandles{root: root}
	for _, d := range []struct {
		name string
		fh   *[]byte
	}{{"tmp", &h.tmp}, {"new", &h.new}, {"cur", &h.cur}} {
		fh, _, err := c.Lookup(ctx, root, d.name)
		if err != nil {
			return nil, fmt.Errorf("client: maildir %s: %w", mailbox, err)
		}
		*d.fh = fh
	}
	if strings.HasPrefix(path.Base(key), ".") {
		switch _, _, err := c.Lookup(ctx, root, "maildirfolder"); {
		case err == nil:
			h.folder = true
		case !IsStatus(err, NFS3ErrNoEnt):
			return nil, fmt.Errorf("client: maildir %s: %w", mailbox, err)
		}
	}
	c.mdc.mu.Lock()
	if c.mdc.m == nil {
		c.mdc.m = map[string]*maildirHandles{}
	}
	c.mdc.m[key] = h
	c.mdc.mu.Unlock()
	return h, nil
}

func (c *Client) dropMaildir(mailbox string) {
	c.mdc.mu.Lock()
	delete(c.mdc.m, path.Clean("/"+mailbox))
	c.mdc.mu.Unlock()
}

// staleHandle reports whether err is a STALE or BADHANDLE answer.
func staleHandle(err error) bool {
	return IsStatus(err, NFS3ErrStale) || IsStatus(err, NFS3ErrBadHandle)
}

// withMaildir runs fn with the mailbox's handles, once more with fresh
// handles if the cached ones were STALE or BADHANDLE. If the look-up from
// the root is answered so too, the root itself is stale (the box has a new
// handle key, or its export directory was replaced): the export is
// mounted again (remount), once, and the look-up retried.
func (c *Client) withMaildir(ctx context.Context, mailbox string, fn func(h *maildirHandles) error) error {
	remounted := false
	for try := 0; ; try++ {
		root := c.rootFH()
		h, err := c.maildir(ctx, mailbox)
		if err != nil && !remounted && staleHandle(err) {
			remounted = true
			if rerr := c.remount(ctx, root); rerr != nil {
				// The MNT's answer says what to do (retry or not).
				return fmt.Errorf("%w (after %v)", rerr, err)
			}
			continue
		}
		if err != nil {
			return err
		}
		err = fn(h)
		if try == 0 && staleHandle(err) {
			c.dropMaildir(mailbox)
			continue
		}
		return err
	}
}

// MakeMaildir creates mailbox (and missing parents) with tmp/, new/ and
// cur/, mode 0700. Existing directories are fine. A Maildir++ folder (a
// last path element starting with ".", e.g. ".Sent") is made as Courier's
// maildirmake -f and Dovecot make one: its parent is made a Maildir too
// (the folder's quota is kept there), and the folder gets an empty
// "maildirfolder" file, which tells Courier's deliverquota, maildrop and
// imapd to look in the parent for maildirsize (reference.md §7.2).
func (c *Client) MakeMaildir(ctx context.Context, mailbox string) error {
	root := folderParent(mailbox)
	folder := root != strings.TrimPrefix(path.Clean("/"+mailbox), "/")
	if folder {
		if err := c.MakeMaildir(ctx, root); err != nil {
			return err
		}
	}
	fh := c.rootFH()
	perm := uint32(0o700)
	parts := strings.Split(strings.Trim(path.Clean("/"+mailbox), "/"), "/")
	if parts[0] == "" {
		parts = nil
	}
	for _, name := range append(parts, "") {
		var dirs []string
		if name == "" {
			dirs = []string{"tmp", "new", "cur"}
		} else {
			dirs = []string{name}
		}
		var next []byte
		for _, d := range dirs {
			h, _, err := c.Mkdir(ctx, fh, d, SetAttr{Mode: &perm})
			if IsStatus(err, NFS3ErrExist) {
				h, _, err = c.Lookup(ctx, fh, d)
			}
			if err != nil {
				return fmt.Errorf("client: make maildir %s: %w", mailbox, err)
			}
			next = h
		}
		if name != "" {
			fh = next
		}
	}
	if folder {
		mode := uint32(0o600)
		_, _, err := c.Create(ctx, fh, "maildirfolder", Guarded, SetAttr{Mode: &mode}, [8]byte{})
		if err != nil && !IsStatus(err, NFS3ErrExist) {
			return fmt.Errorf("client: make maildir %s: %w", mailbox, err)
		}
	}
	return nil
}

// Deliver stores the message read from r in mailbox's new/ and returns its
// file name there. It follows reference.md §7.6:
//
//  1. resolve (cached) handles of the Maildir and its tmp/ and new/;
//  2. name it <unique>,S=<size> (UniqueName);
//  3. CREATE tmp/<name> GUARDED with mode 0600, which the server applies
//     with the create: one call, and on mailnfsd one durable step (an
//     EXCLUSIVE create needs a SETATTR after it, RFC 1813 §3.3.8: two
//     calls and two syncs). The name carries 128 random bits, so if the
//     CREATE answers EXIST only a retransmission of this very call can
//     have made it (a server without a duplicate request cache runs it
//     twice): an empty regular file by that name is adopted as ours;
//     anything else is a collision and another name is tried;
//  4. WRITE the data: one FILE_SYNC WRITE if it fits in wtmax, else UNSTABLE
//     WRITEs and a COMMIT, starting again if the write verifier changes;
//     every count is checked;
//  5. RENAME tmp/<name> to new/<name>. If RENAME answers NOENT, the reply
//     to an earlier transmission was lost and the server (without a
//     duplicate request cache entry) ran it again: LOOKUP new/<name> (and
//     GETATTR if the LOOKUP reply has no attributes) and compare the
//     fileid with the one created; equal means delivered. The RENAME's
//     reply is awaited up to 10 s past ctx's deadline (the call stays
//     pending and is resent with its XID on a new connection): a server
//     replies only once the rename is durable, so a late reply is the
//     sure word. A RENAME with no answer even then may have run too: the
//     same check, with a fresh 5-second deadline, decides (the entry it
//     sees may not be on disk yet if the server is still syncing it: the
//     one case where a nil error can precede durability, and only after
//     a server kept a RENAME unanswered for ctx's time plus 10 s).
//
// A failure removes the tmp file when it can (a CREATE without an answer
// included) and never reuses the name; if the tmp file is already gone
// then, a RENAME that ran late has moved it, and new/<name> is checked
// once more. Only a nil error means the message is in new/.
// Temporary(err) tells an MTA whether to defer (EX_TEMPFAIL) or bounce.
func (c *Client) Deliver(ctx context.Context, mailbox string, r io.Reader) (string, error) {
	data, err := readMessage(mailbox, r)
	if err != nil {
		return "", err
	}
	return c.deliverData(ctx, mailbox, data)
}

// readMessage reads a message to deliver to mailbox, at most
// MaxMessageSize bytes.
func readMessage(mailbox string, r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxMessageSize+1))
	if err != nil {
		return nil, fmt.Errorf("client: deliver to %s: read message: %w", mailbox, err)
	}
	if len(data) > MaxMessageSize {
		return nil, fmt.Errorf("client: deliver to %s: %w", mailbox, ErrMessageTooLarge)
	}
	return data, nil
}

// deliverData is Deliver of a message already read.
func (c *Client) deliverData(ctx context.Context, mailbox string, data []byte) (string, error) {
	var name string
	var last created
	// owed: a try was refused STALE or BADHANDLE after its CREATE was
	// sent, and new/ has not been looked at with fresh handles since.
	// The refusal may come from a box restarted with a new handle key
	// (or with its export directory replaced) after it ran the CREATE,
	// or the RENAME: delivered then; else the tmp file, if any, goes.
	owed := false
	// found makes that look with h and reports whether last is in new/.
	// A failed LOOKUP proves nothing, but tmp/ no longer holding the file
	// it created means it was renamed, so new/ is asked again (with a
	// fresh deadline, as deliver does).
	found := func(ctx context.Context, h *maildirHandles) bool {
		owed = false
		if last.ok && c.holds(ctx, h.new, last.name, last.fileid) {
			return true
		}
		var ignored error
		return c.removeTmp(h, last.name, &ignored) && last.ok && c.holdsNow(h.new, last.name, last.fileid)
	}
	err := c.withMaildir(ctx, mailbox, func(h *maildirHandles) error {
		if owed && found(ctx, h) {
			name = last.name
			return nil
		}
		var err error
		name, err = c.deliver(ctx, h, data, &last)
		owed = staleHandle(err) && last.name != ""
		return err
	})
	if err != nil && owed {
		// The retry could not look (the caller's deadline passed, the
		// remount failed): look now with a fresh deadline, so that a
		// delivery reported failed is not in new/.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		c.dropMaildir(mailbox) // the handles in the cache were refused
		if c.withMaildir(cctx, mailbox, func(h *maildirHandles) error {
			if found(cctx, h) {
				return nil
			}
			return os.ErrNotExist
		}) == nil {
			return last.name, nil
		}
	}
	if err != nil {
		return "", fmt.Errorf("client: deliver to %s: %w", mailbox, err)
	}
	return name, nil
}

// created is the tmp file a delivery made (ok), or may have made.
type created struct {
	ok     bool
	name   string
	fileid uint64
}

// deliver stores data in h.new; last is set to each tmp file it creates.
func (c *Client) deliver(ctx context.Context, h *maildirHandles, data []byte, last *created) (string, error) {
	for attempt := 0; ; attempt++ {
		name := UniqueName(time.Now(), os.Getpid(), c.deliveries.Add(1), c.hostname) + ",S=" + strconv.Itoa(len(data))
		fh, fileid, err := c.createTmp(ctx, h, name)
		if IsStatus(err, NFS3ErrExist) && attempt < 3 {
			continue // someone has this name: never reuse it, pick another
		}
		var ce *Error
		if err != nil && !errors.As(err, &ce) {
			// No answer: the CREATE may have run. The name is ours
			// alone, so whatever is there is ours to remove.
			return "", c.cleanup(h, name, err)
		}
		if staleHandle(err) {
			*last = created{name: name}
		}
		if err != nil {
			return "", err
		}
		*last = created{true, name, fileid}
		if err := c.WriteAll(ctx, fh, data); err != nil {
			return "", c.cleanup(h, name, err)
		}
		// The RENAME's reply, however late, says the message is durable
		// in new/: wait a while for it past the deadline.
		err = c.Rename(withReplyGrace(ctx, c.renameGrace), h.tmp, name, h.new, name)
		if err != nil && !errors.As(err, &ce) {
			// Still no answer (the connection is gone for good, or the
			// server restarted): the RENAME may have run. Look, with a
			// fresh deadline, before giving up, so a retry by the caller
			// cannot make a second copy.
			if c.holdsNow(h.new, name, fileid) {
				err = nil
			}
		}
		if IsStatus(err, NFS3ErrNoEnt) && c.holds(ctx, h.new, name, fileid) {
			err = nil // a retransmitted RENAME that had already moved it
		}
		if err != nil {
			if c.removeTmp(h, name, &err) && c.holdsNow(h.new, name, fileid) {
				// tmp/name is gone: the RENAME ran after all, after
				// the look above (a server slower than every deadline).
				return name, nil
			}
			return "", err
		}
		return name, nil
	}
}

// createTmp creates tmp/name (GUARDED, mode 0600) and returns its handle
// and fileid. EXIST for an empty regular file is our own retransmitted
// CREATE (the name is unique): it is adopted.
func (c *Client) createTmp(ctx context.Context, h *maildirHandles, name string) ([]byte, uint64, error) {
	mode := uint32(0o600)
	fh, attr, err := c.Create(ctx, h.tmp, name, Guarded, SetAttr{Mode: &mode}, [8]byte{})
	if IsStatus(err, NFS3ErrExist) {
		got, a, lerr := c.Lookup(ctx, h.tmp, name)
		if lerr == nil && a == nil {
			a, lerr = c.Getattr(ctx, got)
		}
		if lerr != nil || a.Type != nfs3.TypeReg || a.Size != 0 {
			return nil, 0, err // a real collision: the caller picks another name
		}
		fh, attr, err = got, a, nil
	}
	if err != nil {
		return nil, 0, err
	}
	if attr == nil {
		attr, err = c.Getattr(ctx, fh)
		if err != nil {
			return nil, 0, c.cleanup(h, name, err)
		}
	}
	return fh, attr.FileID, nil
}

// holds reports whether dir's entry name is the file fileid (asking
// GETATTR when LOOKUP returns no attributes).
func (c *Client) holds(ctx context.Context, dir []byte, name string, fileid uint64) bool {
	fh, attr, err := c.Lookup(ctx, dir, name)
	if err == nil && attr == nil {
		attr, err = c.Getattr(ctx, fh)
	}
	return err == nil && attr.FileID == fileid
}

const (
	// renameGrace is Client.renameGrace's value.
	renameGrace = 10 * time.Second
	// cleanupTimeout bounds the calls that tidy up or check after a
	// failure, made with a fresh deadline so that an expired one does
	// not leave a file behind.
	cleanupTimeout = 5 * time.Second
)

// holdsNow is holds with a fresh deadline (cleanupTimeout), for a check
// made when the caller's deadline may have passed.
func (c *Client) holdsNow(dir []byte, name string, fileid uint64) bool {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	return c.holds(ctx, dir, name, fileid)
}

// cleanup removes tmp/name after a failed delivery (see removeTmp) and
// returns cause, joined with the cleanup error if that failed too.
func (c *Client) cleanup(h *maildirHandles, name string, cause error) error {
	c.removeTmp(h, name, &cause)
	return cause
}

// removeTmp removes tmp/name after a failed delivery whose error is
// *cause, with a fresh deadline. It reports whether tmp/name was already
// gone (NOENT); a failure of the removal is joined to *cause.
func (c *Client) removeTmp(h *maildirHandles, name string, cause *error) (gone bool) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	err := c.Remove(ctx, h.tmp, name)
	if IsStatus(err, NFS3ErrNoEnt) {
		return true
	}
	if err != nil {
		*cause = fmt.Errorf("%w; cleanup of tmp/%s also failed: %v", *cause, name, err)
	}
	return false
}

// Message is one message of a Maildir listing.
type Message struct {
	Dir    string // "new" or "cur"
	Name   string // file name in Dir
	Key    string // the unique part, stable across flag changes
	Size   int64  // from ",S=", else the file's size
	Flags  string // maildir flags (cur/ only)
	FileID uint64
}

// List returns the messages in new/ and cur/ (READDIRPLUS, so sizes without
// ",S=" come from attributes). Names starting with "." and unparsable
// names are skipped. Each key is listed once: a message seen in both
// directories (renamed during the listing) as in cur/.
func (c *Client) List(ctx context.Context, mailbox string) ([]Message, error) {
	var out []Message
	err := c.withMaildir(ctx, mailbox, func(h *maildirHandles) error {
		out = out[:0]
		seen := map[string]int{} // key -> index in out
		for _, d := range []struct {
			name string
			fh   []byte
		}{{"new", h.new}, {"cur", h.cur}} {
			err := c.ReadDirPlusAll(ctx, d.fh, func(es []DirEntryPlus) bool {
				for _, e := range es {
					mn, err := ParseMessageName(e.Name)
					if err != nil {
						continue
					}
					m := Message{Dir: d.name, Name: e.Name, Key: mn.Unique, Size: mn.Size, FileID: e.FileID}
					if d.name == "cur" {
						m.Flags = mn.Flags
					}
					if m.Size < 0 && e.Attr != nil {
						m.Size = int64(e.Attr.Size)
					}
					// A message renamed while the directories are read
					// (new/ to cur/, or a flag change in cur/) can show
					// under both names: list it once, as in cur/.
					if i, dup := seen[m.Key]; dup {
						if out[i].Dir == "new" && m.Dir == "cur" {
							out[i] = m
						}
						continue
					}
					seen[m.Key] = len(out)
					out = append(out, m)
				}
				return true
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("client: list %s: %w", mailbox, err)
	}
	return out, nil
}

// Usage returns the Maildir++ quota figures of mailbox: total bytes and
// message count of new/ and cur/, sizes taken from ",S=" where present
// (reference.md §7.2).
func (c *Client) Usage(ctx context.Context, mailbox string) (bytes, count int64, err error) {
	ms, err := c.List(ctx, mailbox)
	if err != nil {
		return 0, 0, err
	}
	for _, m := range ms {
		if m.Size > 0 {
			bytes += m.Size
		}
		count++
	}
	return bytes, count, nil
}

// find locates the message whose key (unique part) or file name is key, in
// new/ first, then cur/.
func (c *Client) find(ctx context.Context, h *maildirHandles, key string) (dir []byte, dirName, name string, fh []byte, attr *Attr, err error) {
	mn, err := ParseMessageName(key)
	if err != nil {
		return nil, "", "", nil, nil, err
	}
	if mn.Info == "" {
		fh, attr, err = c.Lookup(ctx, h.new, key)
		if err == nil {
			return h.new, "new", key, fh, attr, nil
		}
		if !IsStatus(err, NFS3ErrNoEnt) {
			return nil, "", "", nil, nil, err
		}
	}
	fh, attr, err = c.Lookup(ctx, h.cur, key)
	if err == nil {
		return h.cur, "cur", key, fh, attr, nil
	}
	if !IsStatus(err, NFS3ErrNoEnt) {
		return nil, "", "", nil, nil, err
	}
	var found string
	err = c.ReadDirAll(ctx, h.cur, func(es []DirEntry) bool {
		for _, e := range es {
			if e.Name == mn.Unique || strings.HasPrefix(e.Name, mn.Unique+":") {
				found = e.Name
				return false
			}
		}
		return true
	})
	if err != nil {
		return nil, "", "", nil, nil, err
	}
	if found == "" {
		return nil, "", "", nil, nil, fmt.Errorf("%w: %s", ErrNoMessage, key)
	}
	fh, attr, err = c.Lookup(ctx, h.cur, found)
	if err != nil {
		return nil, "", "", nil, nil, err
	}
	return h.cur, "cur", found, fh, attr, nil
}

// Open returns a reader of the message with the given key (its unique part,
// or its file name) in mailbox.
func (c *Client) Open(ctx context.Context, mailbox, key string) (io.ReadCloser, error) {
	var fh []byte
	err := c.withMaildir(ctx, mailbox, func(h *maildirHandles) error {
		var err error
		_, _, _, fh, _, err = c.find(ctx, h, key)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("client: open %s in %s: %w", key, mailbox, err)
	}
	return &fileReader{ctx: ctx, c: c, fh: fh}, nil
}

// fileReader reads a file sequentially with READ calls.
type fileReader struct {
	ctx context.Context
	c   *Client
	fh  []byte
	off uint64
	buf []byte
	eof bool
}

func (r *fileReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.eof {
			return 0, io.EOF
		}
		data, eof, err := r.c.Read(r.ctx, r.fh, r.off, r.c.MaxRead())
		if err != nil {
			return 0, err
		}
		if len(data) == 0 && !eof {
			return 0, fmt.Errorf("client: READ returned no data before eof")
		}
		r.off += uint64(len(data))
		r.buf, r.eof = data, eof
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *fileReader) Close() error { return nil }

// SetFlags gives the message with key the flags (any order; they are
// sorted) by renaming it to cur/<unique>:2,<flags>, keeping any text
// Dovecot put after the flags (",<extra>"). A message in new/ moves to
// cur/. It returns the new file name. If another front end renames the
// message meanwhile (its own flag change), it is looked up again and
// renamed from its new name.
func (c *Client) SetFlags(ctx context.Context, mailbox, key, flags string) (string, error) {
	flags, err := NormalizeFlags(flags)
	if err != nil {
		return "", err
	}
	var to string
	err = c.withMaildir(ctx, mailbox, func(h *maildirHandles) error {
		for tries := 1; ; tries++ {
			dir, _, name, fh, attr, err := c.find(ctx, h, key)
			if err != nil {
				return err
			}
			mn, _ := ParseMessageName(name)
			to = CurName(mn.Unique, flags) + mn.Extra
			if len(to) > 255 {
				// Only a name of another program's making is that long.
				return fmt.Errorf("%w: %q with the flags is %d bytes, longer than a file name may be", ErrBadMessageName, mn.Unique, len(to))
			}
			if name == to && bytes.Equal(dir, h.cur) {
				return nil
			}
			err = c.Rename(ctx, dir, name, h.cur, to)
			if !IsStatus(err, NFS3ErrNoEnt) {
				return err
			}
			// A retransmitted RENAME that already ran: check the target.
			if attr == nil {
				attr, _ = c.Getattr(ctx, fh) // the handle outlives the rename
			}
			if attr != nil && c.holds(ctx, h.cur, to, attr.FileID) {
				return nil
			}
			if tries == raceRetries {
				return err
			}
			// Renamed by someone else since find: look again.
		}
	})
	if err != nil {
		return "", fmt.Errorf("client: set flags of %s in %s: %w", key, mailbox, err)
	}
	return to, nil
}

// raceRetries bounds how often SetFlags and Delete look a message up
// again after another front end renamed it under them.
const raceRetries = 8

// Delete removes the message with key. A message already gone after a
// retransmitted REMOVE, or removed by someone else, is success; one
// renamed by someone else (a flag change) is looked up again and
// removed. Where the Maildir keeps a Maildir++ maildirsize, the removal
// is appended to it ("-<size> -1"), except in Trash.
func (c *Client) Delete(ctx context.Context, mailbox, key string) error {
	size := int64(-1) // of the message this call removed
	err := c.withMaildir(ctx, mailbox, func(h *maildirHandles) error {
		for tries := 1; ; tries++ {
			dir, _, name, _, attr, err := c.find(ctx, h, key)
			if errors.Is(err, ErrNoMessage) && tries > 1 {
				return nil // removed by someone else, who accounts for it
			}
			if err != nil {
				return err
			}
			err = c.Remove(ctx, dir, name)
			if IsStatus(err, NFS3ErrNoEnt) && tries < raceRetries {
				continue // removed or renamed meanwhile: look again
			}
			if err != nil {
				return err
			}
			if mn, perr := ParseMessageName(name); perr == nil && mn.Size >= 0 {
				size = mn.Size
			} else if attr != nil {
				size = int64(attr.Size)
			}
			return nil
		}
	})
	if err != nil {
		return fmt.Errorf("client: delete %s in %s: %w", key, mailbox, err)
	}
	// A Maildir++ quota in use (a maildirsize is there) counts the
	// removal, as Courier and Dovecot do; Trash is not counted.
	if size >= 0 && !isTrash(mailbox) {
		root, err := c.quotaRoot(ctx, mailbox)
		if err == nil {
			err = c.appendMaildirsize(ctx, root, fmt.Sprintf("-%d -1\n", size))
		}
		if err != nil && !IsStatus(err, NFS3ErrNoEnt) {
			c.log.Debug("client: maildirsize not updated", "mailbox", mailbox, "err", err)
		}
	}
	return nil
}

// CleanTmp removes files in mailbox's tmp/ whose ctime (last change) is
// older than maxAge (TmpMaxAge if zero), measured against now on the
// client's clock (keep clocks in sync with NTP). It returns the names
// removed.
func (c *Client) CleanTmp(ctx context.Context, mailbox string, maxAge time.Duration, now time.Time) ([]string, error) {
	if maxAge <= 0 {
		maxAge = TmpMaxAge
	}
	cutoff := now.Add(-maxAge)
	var removed []string
	err := c.withMaildir(ctx, mailbox, func(h *maildirHandles) error {
		var old []string
		err := c.ReadDirPlusAll(ctx, h.tmp, func(es []DirEntryPlus) bool {
			for _, e := range es {
				a := e.Attr
				if a == nil || a.Type == nfs3.TypeDir {
					continue
				}
				// ctime alone: a client cannot set it, and every write,
				// SETATTR and rename moves it. atime and mtime hold an
				// EXCLUSIVE CREATE's verifier (RFC 1813 §3.3.8, knfsd's
				// encoding: random seconds, often in the future) until the
				// delivery's SETATTR, so a delivery cut off right after
				// its CREATE would otherwise stay in tmp/ for years.
				if a.Ctime.Time().Before(cutoff) {
					old = append(old, e.Name)
				}
			}
			return true
		})
		if err != nil {
			return err
		}
		for _, n := range old {
			if err := c.Remove(ctx, h.tmp, n); err != nil && !IsStatus(err, NFS3ErrNoEnt) {
				return err
			}
			removed = append(removed, n)
		}
		return nil
	})
	if err != nil {
		return removed, fmt.Errorf("client: clean tmp of %s: %w", mailbox, err)
	}
	return removed, nil
}
