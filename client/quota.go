package client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/mailnfs/mailnfs/internal/nfs3"
)

// Quota is a Maildir++ quota (reference.md §7.2): at most Bytes bytes and
// Count messages in a Maildir and its folders. Zero means no limit of that
// kind.
type Quota struct {
	Bytes, Count int64
}

// ErrOverQuota is returned by DeliverQuota when the message does not fit
// the mailbox's quota. It is not Temporary: the mailbox must shrink first
// (Courier's deliverquota exits 77 for it, and so does mailnfs deliver).
var ErrOverQuota = errors.New("client: mailbox over quota")

// ParseQuota parses a Maildir++ quota definition: a comma-separated list
// of <n>S (bytes) and <n>C (messages), e.g. "10000000S,1000C", as in the
// first line of maildirsize and userdb's quota= field.
func ParseQuota(s string) (Quota, error) {
	var q Quota
	if s == "" {
		return q, fmt.Errorf("client: empty quota definition")
	}
	for _, part := range strings.Split(s, ",") {
		if len(part) < 2 {
			return Quota{}, fmt.Errorf("client: quota %q: bad part %q", s, part)
		}
		n, err := strconv.ParseInt(part[:len(part)-1], 10, 64)
		if err != nil || n < 0 {
			return Quota{}, fmt.Errorf("client: quota %q: bad number in %q", s, part)
		}
		switch part[len(part)-1] {
		case 'S':
			q.Bytes = n
		case 'C':
			q.Count = n
		default:
			return Quota{}, fmt.Errorf("client: quota %q: %q is neither <n>S nor <n>C", s, part)
		}
	}
	return q, nil
}

// String returns the definition as maildirsize's first line writes it.
func (q Quota) String() string {
	var parts []string
	if q.Bytes > 0 {
		parts = append(parts, strconv.FormatInt(q.Bytes, 10)+"S")
	}
	if q.Count > 0 {
		parts = append(parts, strconv.FormatInt(q.Count, 10)+"C")
	}
	return strings.Join(parts, ",")
}

// fits reports whether a message of size bytes fits beside usage.
func (q Quota) fits(bytes, count, size int64) bool {
	return (q.Bytes <= 0 || bytes+size <= q.Bytes) && (q.Count <= 0 || count+1 <= q.Count)
}

// Maildir++ constants (reference.md §7.2).
const (
	maildirsizeName = "maildirsize"
	// maildirsizeMax: a maildirsize this long or longer is recalculated.
	maildirsizeMax = 5120
	// maildirsizeStale: over quota, a maildirsize this old is
	// recalculated before the delivery is refused.
	maildirsizeStale = 15 * time.Minute
)

// maildirsize is the parsed file.
type maildirsize struct {
	def          string // first line
	bytes, count int64  // sums of the other lines
	lines        int    // lines after the first
	size         int64
	mtime        time.Time
}

// DeliverQuota delivers like Deliver if the message fits mailbox's
// Maildir++ quota q, kept in maildirsize at the Maildir's root (a folder,
// a last path element starting with ".", counts against its parent), and
// appends the message's "<size> 1" line to maildirsize afterwards. The
// file is recalculated from the message names' ",S=" sizes of new/ and
// cur/ of the Maildir and its folders (Trash excepted) when it is
// missing, 5,120 bytes or longer, defines another quota or sums to a
// negative usage, and before a
// message is refused when it has more than one line of usage or is 15
// minutes old, as Courier and Dovecot do. A message that does not fit
// gets ErrOverQuota and nothing is written. A zero q, or a Trash folder
// (".Trash", ".Trash.*": not counted), delivers as Deliver.
//
// NFSv3 has no atomic append: two front ends appending at once may lose a
// line, which the format tolerates (the next recalculation repairs it).
func (c *Client) DeliverQuota(ctx context.Context, mailbox string, r io.Reader, q Quota) (string, error) {
	if q == (Quota{}) || isTrash(mailbox) {
		// Trash is not counted (Courier's maildirquota_countfolder):
		// nothing to check or to append.
		return c.Deliver(ctx, mailbox, r)
	}
	data, err := readMessage(mailbox, r)
	if err != nil {
		return "", err
	}
	root, err := c.quotaRoot(ctx, mailbox)
	if err != nil {
		return "", fmt.Errorf("client: deliver to %s: %w", mailbox, err)
	}
	size := int64(len(data))
	ms, err := c.readMaildirsize(ctx, root)
	if err != nil {
		return "", fmt.Errorf("client: deliver to %s: %w", mailbox, err)
	}
	recalculated := false
	if ms.needsRecalc(q) {
		if ms, err = c.recalcMaildirsize(ctx, root, q); err != nil {
			return "", fmt.Errorf("client: deliver to %s: %w", mailbox, err)
		}
		recalculated = true
	}
	if !q.fits(ms.bytes, ms.count, size) && !recalculated && (ms.lines > 1 || time.Since(ms.mtime) >= maildirsizeStale) {
		if ms, err = c.recalcMaildirsize(ctx, root, q); err != nil {
			return "", fmt.Errorf("client: deliver to %s: %w", mailbox, err)
		}
	}
	if !q.fits(ms.bytes, ms.count, size) {
		return "", fmt.Errorf("client: deliver to %s: %w (%d bytes in %d messages, quota %s, message %d bytes)", mailbox, ErrOverQuota, ms.bytes, ms.count, q, size)
	}
	name, err := c.deliverData(ctx, mailbox, data)
	if err != nil {
		return "", err
	}
	// Best effort, as Courier does: the message is delivered.
	if err := c.appendMaildirsize(ctx, root, fmt.Sprintf("%d 1\n", size)); err != nil {
		c.log.Debug("client: maildirsize not updated", "mailbox", root, "err", err)
	}
	return name, nil
}

// QuotaUsage is a Maildir's Maildir++ quota and usage.
type QuotaUsage struct {
	Quota        Quota // as maildirsize defines it (zero: none)
	Bytes, Count int64 // in use
	// Recalculated: summed from the messages just now (and maildirsize
	// rewritten, if a quota is defined); else read from maildirsize.
	Recalculated bool
}

// QuotaUsage returns the quota and usage of mailbox's Maildir (a folder
// counts against its parent) as DeliverQuota sees them: from maildirsize,
// recalculated first (and rewritten) when recalc is set or the file is
// 5,120 bytes or longer, defines another quota than q or sums to a
// negative usage. Without q or a
// maildirsize, the usage is summed and nothing is written.
func (c *Client) QuotaUsage(ctx context.Context, mailbox string, q Quota, recalc bool) (QuotaUsage, error) {
	root, err := c.quotaRoot(ctx, mailbox)
	if err != nil {
		return QuotaUsage{}, fmt.Errorf("client: quota of %s: %w", mailbox, err)
	}
	ms, err := c.readMaildirsize(ctx, root)
	if err != nil {
		return QuotaUsage{}, fmt.Errorf("client: quota of %s: %w", mailbox, err)
	}
	if q == (Quota{}) && ms != nil {
		q, _ = ParseQuota(ms.def) // a torn definition: treated as none
	}
	if q == (Quota{}) {
		b, n, err := c.sumMaildir(ctx, root)
		if err != nil {
			return QuotaUsage{}, fmt.Errorf("client: quota of %s: %w", mailbox, err)
		}
		return QuotaUsage{Bytes: b, Count: n, Recalculated: true}, nil
	}
	if recalc || ms.needsRecalc(q) {
		if ms, err = c.recalcMaildirsize(ctx, root, q); err != nil {
			return QuotaUsage{}, fmt.Errorf("client: quota of %s: %w", mailbox, err)
		}
		return QuotaUsage{Quota: q, Bytes: ms.bytes, Count: ms.count, Recalculated: true}, nil
	}
	return QuotaUsage{Quota: q, Bytes: ms.bytes, Count: ms.count}, nil
}

// quotaWarnName is the file whose mtime says when the last quota warning
// went into a Maildir (Courier's deliverquota keeps it there too).
const quotaWarnName = "quotawarn"

// QuotaWarnEvery is the least time between two quota warnings to one
// Maildir.
const QuotaWarnEvery = 24 * time.Hour

// QuotaWarn delivers msg (a complete message: the warning the user will
// read) into mailbox when its Maildir++ usage under q, as maildirsize
// holds it, is at or above percent of either limit, unless a warning went
// in within QuotaWarnEvery, as Courier's "deliverquota -w" does. The
// warning itself is not refused for quota, but its "<size> 1" line is
// appended to maildirsize. It reports whether it sent one.
func (c *Client) QuotaWarn(ctx context.Context, mailbox string, q Quota, percent int, msg []byte) (bool, error) {
	if q == (Quota{}) || percent <= 0 {
		return false, nil
	}
	u, err := c.QuotaUsage(ctx, mailbox, q, false)
	if err != nil {
		return false, err
	}
	over := func(used, limit int64) bool { return limit > 0 && used*100 >= limit*int64(percent) }
	if !over(u.Bytes, q.Bytes) && !over(u.Count, q.Count) {
		return false, nil
	}
	root, err := c.quotaRoot(ctx, mailbox)
	if err != nil {
		return false, err
	}
	due := false
	err = c.withMaildir(ctx, root, func(h *maildirHandles) error {
		_, attr, err := c.Lookup(ctx, h.root, quotaWarnName)
		switch {
		case IsStatus(err, NFS3ErrNoEnt):
			due = true
			return nil
		case err != nil:
			return err
		case attr == nil:
			return fmt.Errorf("no attributes for %s", quotaWarnName)
		}
		due = time.Since(attr.Mtime.Time()) >= QuotaWarnEvery
		return nil
	})
	if err != nil || !due {
		return false, err
	}
	if _, err := c.Deliver(ctx, root, bytes.NewReader(msg)); err != nil {
		return false, err
	}
	// The warning counts like any message (Courier's deliverquota
	// appends its line too); best effort, as in DeliverQuota.
	if err := c.appendMaildirsize(ctx, root, fmt.Sprintf("%d 1\n", len(msg))); err != nil && !IsStatus(err, NFS3ErrNoEnt) {
		c.log.Debug("client: maildirsize not updated", "mailbox", root, "err", err)
	}
	// The stamp, after the warning: a lost stamp costs a second warning,
	// not a missing one. UNCHECKED CREATE truncates nothing; the mtime is
	// set to the server's time.
	err = c.withMaildir(ctx, root, func(h *maildirHandles) error {
		mode := uint32(0o600)
		fh, _, err := c.Create(ctx, h.root, quotaWarnName, Unchecked, SetAttr{Mode: &mode}, [8]byte{})
		if err != nil {
			return err
		}
		_, err = c.Setattr(ctx, fh, SetAttr{Mtime: nfs3.SetToServerTime, Atime: nfs3.SetToServerTime}, nil)
		return err
	})
	return true, err
}

// folderParent is the Maildir a Maildir++ folder named mailbox (last
// element starting with ".", such as ".Sent") belongs to, which is the
// client's root ("") for a mailbox of one element; a mailbox whose name is
// not a folder's is its own. MakeMaildir makes folders by this name rule.
func folderParent(mailbox string) string {
	clean := path.Clean("/" + mailbox)
	if strings.HasPrefix(path.Base(clean), ".") {
		clean = path.Dir(clean)
	}
	return strings.TrimPrefix(clean, "/")
}

// quotaRoot is the Maildir whose maildirsize counts the existing mailbox:
// its parent if it is a Maildir++ folder (a dotted name holding a
// maildirfolder file: Courier's maildir_openquotafile goes up for that
// file, not for the name), else itself, so that a Maildir that merely has
// a dotted name (a home's ".maildir") keeps its own maildirsize. The
// answer is cached with the mailbox's handles.
func (c *Client) quotaRoot(ctx context.Context, mailbox string) (string, error) {
	if folderParent(mailbox) == strings.TrimPrefix(path.Clean("/"+mailbox), "/") {
		return folderParent(mailbox), nil
	}
	h, err := c.maildir(ctx, mailbox)
	if err != nil {
		return "", err
	}
	if h.folder {
		return folderParent(mailbox), nil
	}
	return strings.TrimPrefix(path.Clean("/"+mailbox), "/"), nil
}

// needsRecalc reports whether ms (nil: no file) cannot be used for q as
// it is: missing, 5,120 bytes or longer, defining another quota, or
// summing to a negative usage (removals counted for messages that never
// were: Courier's maildirquota.c and Dovecot recalculate then too).
func (ms *maildirsize) needsRecalc(q Quota) bool {
	return ms == nil || ms.size >= maildirsizeMax || !ms.defines(q) || ms.bytes < 0 || ms.count < 0
}

// defines reports whether the file's first line defines q.
func (ms *maildirsize) defines(q Quota) bool {
	got, err := ParseQuota(ms.def)
	return err == nil && got == q
}

// isTrash reports whether mailbox is a Maildir++ Trash folder, whose
// messages the quota does not count.
func isTrash(mailbox string) bool {
	b := path.Base(path.Clean("/" + mailbox))
	return b == ".Trash" || strings.HasPrefix(b, ".Trash.")
}

// readMaildirsize reads root's maildirsize; nil if there is none or it is
// unreadable as such (it is then recalculated).
func (c *Client) readMaildirsize(ctx context.Context, root string) (*maildirsize, error) {
	var ms *maildirsize
	err := c.withMaildir(ctx, root, func(h *maildirHandles) error {
		fh, attr, err := c.Lookup(ctx, h.root, maildirsizeName)
		if IsStatus(err, NFS3ErrNoEnt) {
			return nil
		}
		if err != nil {
			return err
		}
		if attr == nil {
			if attr, err = c.Getattr(ctx, fh); err != nil {
				return err
			}
		}
		if attr.Size >= maildirsizeMax {
			// To be recalculated; its first line still defines the
			// quota (Courier reads it from the first 5,120 bytes).
			head, _, err := c.Read(ctx, fh, 0, maildirsizeMax)
			if err != nil {
				return err
			}
			def, _, _ := bytes.Cut(head, []byte("\n"))
			ms = &maildirsize{def: strings.TrimSpace(string(def)), size: int64(attr.Size)}
			return nil
		}
		b, err := c.ReadAll(ctx, fh)
		if err != nil {
			return err
		}
		ms = parseMaildirsize(b)
		if ms != nil {
			ms.size, ms.mtime = int64(len(b)), attr.Mtime.Time()
		}
		return nil
	})
	return ms, err
}

// parseMaildirsize parses the file; nil if its first line is missing.
// Lines that are not two numbers are skipped (a torn append).
func parseMaildirsize(b []byte) *maildirsize {
	sc := bufio.NewScanner(bytes.NewReader(b))
	if !bytes.Contains(b, []byte("\n")) || !sc.Scan() {
		return nil
	}
	ms := &maildirsize{def: strings.TrimSpace(sc.Text())}
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		n, err1 := strconv.ParseInt(f[0], 10, 64)
		k, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		ms.bytes += n
		ms.count += k
		ms.lines++
	}
	return ms
}

// recalcMaildirsize sums the messages of root and its folders and writes
// maildirsize anew (through tmp/ and RENAME, so a reader never sees half
// a file).
func (c *Client) recalcMaildirsize(ctx context.Context, root string, q Quota) (*maildirsize, error) {
	used, count, err := c.sumMaildir(ctx, root)
	if err != nil {
		return nil, err
	}
	ms := &maildirsize{def: q.String(), bytes: used, count: count, mtime: time.Now()}
	content := fmt.Sprintf("%s\n%d %d\n", ms.def, ms.bytes, ms.count)
	ms.size, ms.lines = int64(len(content)), 1
	err = c.withMaildir(ctx, root, func(h *maildirHandles) error {
		name := UniqueName(time.Now(), os.Getpid(), c.deliveries.Add(1), c.hostname) + ".maildirsize"
		mode := uint32(0o600)
		fh, _, err := c.Create(ctx, h.tmp, name, Guarded, SetAttr{Mode: &mode}, [8]byte{})
		if err != nil {
			return err
		}
		if err := c.WriteAll(ctx, fh, []byte(content)); err != nil {
			c.Remove(ctx, h.tmp, name)
			return err
		}
		if err := c.Rename(ctx, h.tmp, name, h.root, maildirsizeName); err != nil {
			c.Remove(ctx, h.tmp, name)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("write %s/%s: %w", root, maildirsizeName, err)
	}
	return ms, nil
}

// sumMaildir sums the sizes (",S=", else the file's) and the number of the
// messages in new/ and cur/ of root and its Maildir++ folders, Trash
// excepted.
func (c *Client) sumMaildir(ctx context.Context, root string) (used, count int64, err error) {
	folders := []string{root}
	err = c.withMaildir(ctx, root, func(h *maildirHandles) error {
		return c.ReadDirPlusAll(ctx, h.root, func(es []DirEntryPlus) bool {
			for _, e := range es {
				if e.Attr != nil && e.Attr.Type != nfs3.TypeDir {
					continue // a dot file or symlink (.dovecot.sieve), not a folder
				}
				if len(e.Name) > 1 && e.Name[0] == '.' && e.Name != ".." && !isTrash(e.Name) {
					folders = append(folders, path.Join(root, e.Name))
				}
			}
			return true
		})
	})
	if err != nil {
		return 0, 0, err
	}
	for _, f := range folders {
		msgs, err := c.List(ctx, f)
		if f != root && (IsStatus(err, NFS3ErrNoEnt) || IsStatus(err, NFS3ErrNotDir)) {
			continue // not a folder (no attributes said so), or gone
		}
		if err != nil {
			return 0, 0, err
		}
		for _, m := range msgs {
			used += max(m.Size, 0)
			count++
		}
	}
	return used, count, nil
}

// appendMaildirsize writes line at the end of root's maildirsize (its size
// from GETATTR, then a FILE_SYNC WRITE there).
func (c *Client) appendMaildirsize(ctx context.Context, root, line string) error {
	return c.withMaildir(ctx, root, func(h *maildirHandles) error {
		fh, attr, err := c.Lookup(ctx, h.root, maildirsizeName)
		if err != nil {
			return err
		}
		if attr == nil {
			if attr, err = c.Getattr(ctx, fh); err != nil {
				return err
			}
		}
		wr, err := c.Write(ctx, fh, attr.Size, []byte(line), FileSync)
		if err == nil && wr.Count != len(line) {
			err = fmt.Errorf("short WRITE: %d of %d bytes", wr.Count, len(line))
		}
		return err
	})
}
