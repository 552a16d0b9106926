package maildirfs_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

// TestConcurrentStress runs random operations from 8 goroutines with a
// tiny handle cache (constant eviction, closing and reopening fds). Every
// file's content is its own identity ("id:<n>;" repeated), so an fd mixup
// (a write or read reaching the wrong file) shows up as foreign content.
func TestConcurrentStress(t *testing.T) {
	s := mdtest.NewOpts(t, maildirfs.Options{MaxOpenNodes: 4})
	dir, _, _, err := s.Mkdir(s.Root(), root, "stress", maildirfs.SetAttr{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	ids := map[string]string{} // handle -> identity tag
	var next int
	expected := func(err error) bool {
		return err == nil || errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.EEXIST) ||
			errors.Is(err, maildirfs.ErrStale) || errors.Is(err, syscall.ENOTEMPTY) ||
			errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ENOTDIR)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for i := range 400 {
				name := fmt.Sprintf("f%d", rng.IntN(12))
				switch rng.IntN(6) {
				case 0:
					h, _, _, err := s.Create(dir, root, name, maildirfs.Guarded, maildirfs.SetAttr{}, [8]byte{})
					if err == nil {
						mu.Lock()
						next++
						ids[string(h)] = fmt.Sprintf("id:%d;", next)
						mu.Unlock()
					} else if !expected(err) {
						t.Errorf("create: %v", err)
					}
				case 1:
					h, _, _, err := s.Lookup(dir, root, name)
					if err != nil {
						if !expected(err) {
							t.Errorf("lookup: %v", err)
						}
						continue
					}
					mu.Lock()
					tag := ids[string(h)]
					mu.Unlock()
					if tag == "" {
						continue
					}
					if _, _, _, _, err := s.Write(h, root, uint64(rng.IntN(4))*uint64(len(tag)), []byte(tag), maildirfs.Unstable); err != nil && !expected(err) {
						t.Errorf("write: %v", err)
					}
				case 2:
					h, _, _, err := s.Lookup(dir, root, name)
					if err != nil {
						continue
					}
					mu.Lock()
					tag := ids[string(h)]
					mu.Unlock()
					buf := make([]byte, 256)
					n, _, _, err := s.Read(h, root, 0, buf)
					if err != nil {
						if !expected(err) {
							t.Errorf("read: %v", err)
						}
						continue
					}
					for _, part := range strings.SplitAfter(strings.Trim(string(buf[:n]), "\x00"), ";") {
						part = strings.Trim(part, "\x00")
						if part != "" && tag != "" && part != tag {
							t.Errorf("file %s (%s) contains %q: fd mixup", name, tag, part)
						}
					}
				case 3:
					if _, err := s.Remove(dir, root, name); !expected(err) {
						t.Errorf("remove: %v", err)
					}
				case 4:
					to := fmt.Sprintf("f%d", rng.IntN(12))
					if _, _, err := s.Rename(dir, name, dir, to, root); !expected(err) {
						t.Errorf("rename: %v", err)
					}
				case 5:
					_, _, err := s.ReadDir(dir, root, 0, i%2 == 0, func(e *maildirfs.DirEntry) bool { return true })
					if err != nil {
						t.Errorf("readdir: %v", err)
					}
				}
			}
		})
	}
	wg.Wait()
	if st := s.Stats(); st.OpenNodes > 4+8 {
		t.Errorf("%d open nodes with MaxOpenNodes 4", st.OpenNodes)
	}
}
