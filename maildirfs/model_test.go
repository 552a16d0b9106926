package maildirfs_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

// model is an in-memory tree: path ("" = root) -> object.
type model struct {
	tree  map[string]*mobj
	nextI int
}

type mobj struct {
	dir  bool
	data []byte
	id   int
}

func (m *model) children(p string) []string {
	var out []string
	for q := range m.tree {
		if q != "" && path.Dir("/" + q)[1:] == p {
			out = append(out, q)
		}
	}
	sort.Strings(out)
	return out
}

func join(d, n string) string {
	if d == "" {
		return n
	}
	return d + "/" + n
}

func (m *model) dirs() []string {
	var out []string
	for p, o := range m.tree {
		if o.dir {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func (m *model) alive(id int) bool {
	for _, o := range m.tree {
		if o.id == id {
			return true
		}
	}
	return false
}

// errno returns the errno carried by err, or 0.
func errno(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	if err != nil {
		return syscall.Errno(9999)
	}
	return 0
}

// TestModel runs random operation sequences against the store and an
// in-memory model and checks that results, listings, contents and handle
// identities agree.
func TestModel(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runModel(t, seed, 250) })
	}
}

func runModel(t *testing.T, seed uint64, steps int) {
	s := mdtest.New(t)
	base, _, _, err := s.Mkdir(s.Root(), root, "m", maildirfs.SetAttr{})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 42))
	m := &model{tree: map[string]*mobj{"": {dir: true}}}
	handles := map[int]maildirfs.Handle{}
	names := []string{"a", "b", "c", "x", "y"}
	dirH := func(p string) maildirfs.Handle {
		h := base
		if p == "" {
			return h
		}
		for _, c := range strings.Split(p, "/") {
			nh, _, _, err := s.Lookup(h, root, c)
			if err != nil {
				t.Fatalf("lookup %s in %s: %v", c, p, err)
			}
			h = nh
		}
		return h
	}
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	okOps, errOps := 0, 0
	defer func() { t.Logf("%d ops succeeded, %d failed as the model predicted", okOps, errOps) }()
	for step := range steps {
		dirs := m.dirs()
		d, n := pick(dirs), pick(names)
		p := join(d, n)
		var want syscall.Errno
		var got error
		var desc string
		switch op := rng.IntN(8); op {
		case 0: // create
			desc = "create " + p
			if m.tree[p] != nil {
				want = syscall.EEXIST
			}
			var h maildirfs.Handle
			h, _, _, got = s.Create(dirH(d), root, n, maildirfs.Guarded, maildirfs.SetAttr{}, [8]byte{})
			if want == 0 && got == nil {
				m.nextI++
				m.tree[p] = &mobj{id: m.nextI}
				handles[m.nextI] = h
			}
		case 1, 2: // write to a live file by handle
			var ids []int
			for id := range handles {
				if m.alive(id) {
					ids = append(ids, id)
				}
			}
			if len(ids) == 0 {
				continue
			}
			sort.Ints(ids)
			id := ids[rng.IntN(len(ids))]
			off := rng.IntN(20)
			data := []byte(fmt.Sprintf("<%d>", step))
			desc = fmt.Sprintf("write id %d at %d", id, off)
			_, _, _, _, got = s.Write(handles[id], root, uint64(off), data, maildirfs.Unstable)
			if got == nil {
				for _, o := range m.tree {
					if o.id == id {
						if len(o.data) < off+len(data) {
							o.data = append(o.data, make([]byte, off+len(data)-len(o.data))...)
						}
						copy(o.data[off:], data)
					}
				}
				// Hard links share the slice contents through the id
				// loop above; make them one slice again.
				var first *mobj
				for _, o := range m.tree {
					if o.id == id {
						if first == nil {
							first = o
						} else {
							o.data = first.data
						}
					}
				}
			}
		case 3: // remove
			desc = "remove " + p
			switch o := m.tree[p]; {
			case o == nil:
				want = syscall.ENOENT
			case o.dir:
				want = syscall.EISDIR
			}
			_, got = s.Remove(dirH(d), root, n)
			if want == 0 && got == nil {
				delete(m.tree, p)
			}
		case 4: // mkdir
			desc = "mkdir " + p
			if m.tree[p] != nil {
				want = syscall.EEXIST
			}
			_, _, _, got = s.Mkdir(dirH(d), root, n, maildirfs.SetAttr{})
			if want == 0 && got == nil {
				m.tree[p] = &mobj{dir: true}
			}
		case 5: // rmdir
			desc = "rmdir " + p
			switch o := m.tree[p]; {
			case o == nil:
				want = syscall.ENOENT
			case !o.dir:
				want = syscall.ENOTDIR
			case len(m.children(p)) > 0:
				want = syscall.ENOTEMPTY
			}
			_, got = s.Rmdir(dirH(d), root, n)
			if want == 0 && got == nil {
				delete(m.tree, p)
			}
		case 6: // rename
			d2, n2 := pick(dirs), pick(names)
			q := join(d2, n2)
			desc = "rename " + p + " -> " + q
			src, dst := m.tree[p], m.tree[q]
			switch {
			case src == nil:
				want = syscall.ENOENT
			case p == q || (dst != nil && !src.dir && dst.id == src.id):
				// same file: no-op
				src = nil
			case dst != nil && src.dir && !dst.dir:
				want = syscall.ENOTDIR
			case dst != nil && !src.dir && dst.dir:
				want = syscall.EISDIR
			case src.dir && strings.HasPrefix(q+"/", p+"/"):
				want = syscall.EINVAL
			case dst != nil && dst.dir && len(m.children(q)) > 0:
				want = syscall.ENOTEMPTY
			}
			_, _, got = s.Rename(dirH(d), n, dirH(d2), n2, root)
			if want == 0 && got == nil && src != nil {
				moved := map[string]*mobj{}
				for r, o := range m.tree {
					if r == p || strings.HasPrefix(r, p+"/") {
						moved[q+r[len(p):]] = o
						delete(m.tree, r)
					}
				}
				for r := range m.tree {
					if r == q || strings.HasPrefix(r, q+"/") {
						delete(m.tree, r)
					}
				}
				for r, o := range moved {
					m.tree[r] = o
				}
			}
		case 7: // link a live file
			var files []string
			for r, o := range m.tree {
				if !o.dir && r != "" {
					files = append(files, r)
				}
			}
			if len(files) == 0 {
				continue
			}
			sort.Strings(files)
			src := m.tree[pick(files)]
			desc = fmt.Sprintf("link id %d -> %s", src.id, p)
			if m.tree[p] != nil {
				want = syscall.EEXIST
			}
			_, _, got = s.Link(handles[src.id], dirH(d), n, root)
			if want == 0 && got == nil {
				m.tree[p] = src
			}
		}
		if got == nil {
			okOps++
		} else {
			errOps++
		}
		if errno(got) != want {
			t.Fatalf("step %d %s: got %v, model wants %v", step, desc, got, want)
		}
		if step%25 == 24 || step == steps-1 {
			compareModel(t, s, base, m, handles)
		}
	}
}

func compareModel(t *testing.T, s *mdtest.Store, base maildirfs.Handle, m *model, handles map[int]maildirfs.Handle) {
	t.Helper()
	got := map[string]string{}
	var walk func(h maildirfs.Handle, p string)
	walk = func(h maildirfs.Handle, p string) {
		_, _, err := s.ReadDir(h, root, 0, true, func(e *maildirfs.DirEntry) bool {
			if e.Name == "." || e.Name == ".." {
				return true
			}
			q := join(p, e.Name)
			if e.Attr.Type == maildirfs.TypeDir {
				got[q] = "dir"
				walk(e.Handle, q)
				return true
			}
			buf := make([]byte, 4096)
			n, _, _, err := s.Read(e.Handle, root, 0, buf)
			if err != nil {
				t.Fatalf("read %s: %v", q, err)
			}
			got[q] = string(buf[:n])
			return true
		})
		if err != nil {
			t.Fatalf("readdir %s: %v", p, err)
		}
	}
	walk(base, "")
	want := map[string]string{}
	for p, o := range m.tree {
		if p == "" {
			continue
		}
		if o.dir {
			want[p] = "dir"
		} else {
			want[p] = string(o.data)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("tree mismatch:\n store %v\n model %v", got, want)
	}
	for id, h := range handles {
		a, err := s.Getattr(h)
		if !m.alive(id) {
			if !errors.Is(err, maildirfs.ErrStale) {
				t.Fatalf("handle of removed id %d: %v", id, err)
			}
			continue
		}
		var data []byte
		for _, o := range m.tree {
			if o.id == id {
				data = o.data
			}
		}
		if err != nil || a.Size != uint64(len(data)) {
			t.Fatalf("handle id %d: %v size %d want %d", id, err, a.Size, len(data))
		}
		buf := make([]byte, 4096)
		n, _, _, _ := s.Read(h, root, 0, buf)
		if !bytes.Equal(buf[:n], data) {
			t.Fatalf("handle id %d reads %q want %q", id, buf[:n], data)
		}
	}
}
