package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Verification is the on-disk check of one delivery step.
type Verification struct {
	Acked      int      // acknowledged deliveries
	Found      int      // acknowledged deliveries found exactly once, intact
	Missing    []string // acknowledged, not in new/
	Duplicated []string // in new/ more than once
	Corrupt    []string // files whose content is not what was sent
	Unacked    []string // in new/ but never acknowledged (a failed Deliver may still land)
	StrayTmp   []string // files left in tmp/
	Stray      []string // anything in cur/ or unexpected
}

// OK reports whether nothing was lost, duplicated, corrupted or left in tmp/.
// Unacknowledged deliveries that landed are allowed: the client saw an error.
func (v *Verification) OK() bool {
	return len(v.Missing) == 0 && len(v.Duplicated) == 0 && len(v.Corrupt) == 0 &&
		len(v.StrayTmp) == 0 && len(v.Stray) == 0 && v.Found == v.Acked
}

// String summarises the verification in a few words.
func (v *Verification) String() string {
	if v.OK() {
		s := fmt.Sprintf("ok (%d)", v.Found)
		if len(v.Unacked) > 0 {
			s += fmt.Sprintf(", %d unacked landed", len(v.Unacked))
		}
		return s
	}
	var parts []string
	add := func(what string, l []string) {
		if len(l) > 0 {
			ex := l[0]
			parts = append(parts, fmt.Sprintf("%d %s (e.g. %s)", len(l), what, ex))
		}
	}
	add("missing", v.Missing)
	add("duplicated", v.Duplicated)
	add("corrupt", v.Corrupt)
	add("left in tmp/", v.StrayTmp)
	add("stray", v.Stray)
	return "FAILED: " + strings.Join(parts, ", ")
}

// VerifyMaildirs checks, on disk under export, the Maildirs a delivery step
// used: every acknowledged ID is in some new/ exactly once with exactly the
// bytes MessageBody produces for it (size is the step's size setting, a
// byte count or SizeMix), tmp/ and cur/ are empty.
func VerifyMaildirs(export string, mailboxes []string, acked []string, size int) (*Verification, error) {
	v := &Verification{Acked: len(acked)}
	seen := make(map[string]int, len(acked))
	for _, mb := range mailboxes {
		root := filepath.Join(export, mb)
		for _, sub := range []string{"tmp", "cur"} {
			ents, err := os.ReadDir(filepath.Join(root, sub))
			if err != nil {
				return nil, err
			}
			for _, e := range ents {
				p := filepath.Join(mb, sub, e.Name())
				if sub == "tmp" {
					v.StrayTmp = append(v.StrayTmp, p)
				} else {
					v.Stray = append(v.Stray, p)
				}
			}
		}
		dir := filepath.Join(root, "new")
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			p := filepath.Join(mb, "new", e.Name())
			if !e.Type().IsRegular() {
				v.Stray = append(v.Stray, p)
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				return nil, err
			}
			id, err := MessageID(b)
			if err != nil {
				v.Corrupt = append(v.Corrupt, p)
				continue
			}
			if !bytes.Equal(b, MessageBody(id, messageSize(id, size))) {
				v.Corrupt = append(v.Corrupt, p)
			}
			seen[id]++
			if seen[id] == 2 {
				v.Duplicated = append(v.Duplicated, id)
			}
		}
	}
	ackSet := make(map[string]bool, len(acked))
	for _, id := range acked {
		ackSet[id] = true
		switch seen[id] {
		case 0:
			v.Missing = append(v.Missing, id)
		case 1:
			v.Found++
		}
	}
	for id := range seen {
		if !ackSet[id] {
			v.Unacked = append(v.Unacked, id)
		}
	}
	return v, nil
}

// MakeMaildirs creates the Maildirs (tmp, new, cur) under export, owned by
// uid:gid.
func MakeMaildirs(export string, mailboxes []string, uid, gid int) error {
	for _, mb := range mailboxes {
		// Every directory from the export down is owned by uid:gid.
		parts := strings.Split(filepath.Clean(mb), string(filepath.Separator))
		p := export
		for _, part := range parts {
			p = filepath.Join(p, part)
			if err := mkdirOwned(p, uid, gid); err != nil {
				return err
			}
		}
		for _, sub := range []string{"tmp", "new", "cur"} {
			if err := mkdirOwned(filepath.Join(p, sub), uid, gid); err != nil {
				return err
			}
		}
	}
	return nil
}

func mkdirOwned(p string, uid, gid int) error {
	if err := os.Mkdir(p, 0o755); err != nil {
		if os.IsExist(err) {
			return nil
		}
		return err
	}
	return os.Chown(p, uid, gid)
}
