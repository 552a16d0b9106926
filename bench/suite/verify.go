package suite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"

	"github.com/mailnfs/mailnfs/bench"
)

// Delivery is one acknowledged delivery: the target said the message is in
// new/.
type Delivery struct {
	ID      string `json:"id"` // bench id, in the X-Bench-ID header
	Mailbox string `json:"mailbox"`
	Key     string `json:"key"`
	Size    int    `json:"size"`
	SHA256  string `json:"sha256"`
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// Verification is the check of one target after a workload.
type Verification struct {
	Mailboxes    int      `json:"mailboxes"`
	Expected     int      `json:"expected"`      // acknowledged and not deleted
	Found        int      `json:"found"`         // messages listed
	Lost         int      `json:"lost"`          // expected, absent
	Duplicated   int      `json:"duplicated"`    // ids present more than once
	Corrupt      int      `json:"corrupt"`       // wrong size or hash
	Resurrected  int      `json:"resurrected"`   // deleted, present again
	Unacked      int      `json:"unacked"`       // present, never acknowledged (a lost reply): reported, not a failure
	Foreign      int      `json:"foreign"`       // not a bench message at all
	StrayTmp     int      `json:"stray_tmp"`     // files left in tmp/
	WorkloadErrs int      `json:"workload_errs"` // inconsistencies the workload itself saw (PostMark sizes, bigdir counts)
	Problems     []string `json:"problems,omitempty"`
	OK           bool     `json:"ok"`
}

const maxProblems = 20

func (v *Verification) problem(format string, a ...any) {
	if len(v.Problems) < maxProblems {
		v.Problems = append(v.Problems, fmt.Sprintf(format, a...))
	}
}

func (v *Verification) finish() {
	v.OK = v.Lost == 0 && v.Duplicated == 0 && v.Corrupt == 0 && v.Resurrected == 0 &&
		v.Foreign == 0 && v.StrayTmp == 0 && v.WorkloadErrs == 0
}

// Verify lists every mailbox of t, reads every message and checks it
// against the acknowledged deliveries minus the deleted ids.
func Verify(ctx context.Context, t Target, mailboxes []string, acked []Delivery, deleted []string) (*Verification, error) {
	v := &Verification{Mailboxes: len(mailboxes)}
	gone := make(map[string]bool, len(deleted))
	for _, id := range deleted {
		gone[id] = true
	}
	want := make(map[string]Delivery, len(acked))
	for _, d := range acked {
		if _, dup := want[d.ID]; dup {
			v.Duplicated++
			v.problem("id %s acknowledged twice", d.ID)
		}
		want[d.ID] = d
	}
	for id := range want {
		if !gone[id] {
			v.Expected++
		}
	}
	list := t.List
	if el, ok := t.(interface {
		listExact(context.Context, string) ([]Msg, error)
	}); ok {
		list = el.listExact // every name, a key under two names too
	}
	found := make(map[string]int, len(want))
	for _, mb := range mailboxes {
		ms, err := list(ctx, mb)
		if err != nil {
			return nil, fmt.Errorf("verify: list %s: %w", mb, err)
		}
		for _, m := range ms {
			v.Found++
			body, err := t.Read(ctx, mb, m)
			if err != nil {
				return nil, fmt.Errorf("verify: read %s/%s/%s: %w", mb, m.Dir, m.Name, err)
			}
			id, err := bench.MessageID(body)
			if err != nil {
				v.Foreign++
				v.problem("%s/%s/%s: not a bench message", mb, m.Dir, m.Name)
				continue
			}
			found[id]++
			d, ok := want[id]
			switch {
			case gone[id]:
				v.Resurrected++
				v.problem("%s/%s/%s: deleted message %s is back", mb, m.Dir, m.Name, id)
			case !ok:
				v.Unacked++
				continue
			}
			if ok && (len(body) != d.Size || sum(body) != d.SHA256) {
				v.Corrupt++
				v.problem("%s/%s/%s: %d bytes, want %d (or content differs)", mb, m.Dir, m.Name, len(body), d.Size)
			}
			if ok && d.Mailbox != mb {
				v.Corrupt++
				v.problem("%s: in mailbox %s, delivered to %s", id, mb, d.Mailbox)
			}
		}
		tmp, err := t.TmpFiles(ctx, mb)
		if err != nil {
			return nil, fmt.Errorf("verify: tmp of %s: %w", mb, err)
		}
		for _, n := range tmp {
			v.StrayTmp++
			v.problem("%s/tmp/%s: stray tmp file", mb, n)
		}
	}
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if found[id] == 0 && !gone[id] {
			v.Lost++
			v.problem("%s (mailbox %s, key %s): acknowledged, missing", id, want[id].Mailbox, want[id].Key)
		}
	}
	for id, n := range found {
		if n > 1 {
			v.Duplicated++
			v.problem("%s: present %d times", id, n)
		}
	}
	v.finish()
	return v, nil
}
