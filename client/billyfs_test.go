package client

import (
	"context"
	"flag"
	"fmt"
	"testing"

	"github.com/go-git/go-billy/v5/test"
	"gopkg.in/check.v1"
)

// billySuite runs go-billy's own Filesystem expectations against a
// BillyFS over a real mailnfsd; every test gets a fresh chroot.
type billySuite struct {
	test.FilesystemSuite
	c *Client
	n int
}

func (s *billySuite) SetUpTest(c *check.C) {
	s.n++
	fs, err := NewBillyFS(context.Background(), s.c).Chroot(fmt.Sprintf("t%03d", s.n))
	c.Assert(err, check.IsNil)
	s.FilesystemSuite = test.NewFilesystemSuite(fs)
}

func TestBillyFilesystem(t *testing.T) {
	s := startServer(t)
	c := dialServer(t, s, "", Options{})
	// check.Run, not check.Suite and check.TestingT: Suite adds to a
	// package-wide list that TestingT runs whole, so with -count=N the
	// later runs also ran the earlier runs' suites, whose client and
	// server were closed ("GETATTR : client: closed").
	conf := &check.RunConf{Verbose: testing.Verbose()}
	if f := flag.Lookup("check.f"); f != nil {
		conf.Filter = f.Value.String()
	}
	res := check.Run(&billySuite{c: c}, conf)
	if !res.Passed() {
		t.Error(res)
	} else {
		t.Log(res)
	}
}

// TestTempFileMany and TestTempFileManyWithUtil create and remove 102,400
// files each; every create and remove is synced by the server, so they
// would take many minutes. The other TempFile tests cover the behaviour.
func (s *billySuite) TestTempFileMany(c *check.C) { c.Skip("102,400 synced creates") }

func (s *billySuite) TestTempFileManyWithUtil(c *check.C) { c.Skip("102,400 synced creates") }
