package nfsd_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/nfsd"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

var captureSeeds = flag.Bool("nfs3.capture", false,
	"write the NFSv3 and MOUNT arguments libnfs sends as seed corpora into internal/nfs3/testdata/fuzz")

// n3Codec is an argument type of package nfs3.
type n3Codec interface {
	Encode(*xdr.Encoder)
	Decode(*xdr.Decoder)
}

// argsFor names the decoder and fuzz target of each procedure's arguments.
func argsFor(prog, proc uint32) (n3Codec, string) {
	if prog == nfs3.MountProgram {
		if proc == uint32(nfs3.MountProcMnt) || proc == uint32(nfs3.MountProcUmnt) {
			return new(nfs3.DirPath), "FuzzDirPath"
		}
		return nil, ""
	}
	switch nfs3.Proc(proc) {
	case nfs3.ProcGetattr, nfs3.ProcReadlink, nfs3.ProcFsstat, nfs3.ProcFsinfo, nfs3.ProcPathconf:
		return new(nfs3.HandleArgs), "FuzzHandleArgs"
	case nfs3.ProcSetattr:
		return new(nfs3.SetattrArgs), "FuzzSetattrArgs"
	case nfs3.ProcLookup, nfs3.ProcRemove, nfs3.ProcRmdir:
		return new(nfs3.DirOpArgs), "FuzzDirOpArgs"
	case nfs3.ProcAccess:
		return new(nfs3.AccessArgs), "FuzzAccessArgs"
	case nfs3.ProcRead, nfs3.ProcCommit:
		return new(nfs3.ReadArgs), "FuzzReadArgs"
	case nfs3.ProcWrite:
		return new(nfs3.WriteArgs), "FuzzWriteArgs"
	case nfs3.ProcCreate:
		return new(nfs3.CreateArgs), "FuzzCreateArgs"
	case nfs3.ProcMkdir:
		return new(nfs3.MkdirArgs), "FuzzMkdirArgs"
	case nfs3.ProcSymlink:
		return new(nfs3.SymlinkArgs), "FuzzSymlinkArgs"
	case nfs3.ProcMknod:
		return new(nfs3.MknodArgs), "FuzzMknodArgs"
	case nfs3.ProcRename:
		return new(nfs3.RenameArgs), "FuzzRenameArgs"
	case nfs3.ProcLink:
		return new(nfs3.LinkArgs), "FuzzLinkArgs"
	case nfs3.ProcReaddir:
		return new(nfs3.ReaddirArgs), "FuzzReaddirArgs"
	case nfs3.ProcReaddirplus:
		return new(nfs3.ReaddirplusArgs), "FuzzReaddirplusArgs"
	}
	return nil, ""
}

type capturedCall struct {
	prog, proc uint32
	args       []byte
}

// TestLibnfsArgsRoundTrip runs libnfs (nfs-cp, nfs-ls, nfs-cat) against
// mailnfsd and checks that every NFSv3 and MOUNT argument it sends decodes
// with package nfs3 and re-encodes to the same bytes: our codec against an
// independent client's. With -nfs3.capture the arguments become fuzz seeds
// named after their source (libnfs-4.0-PROC-N).
func TestLibnfsArgsRoundTrip(t *testing.T) {
	for _, tool := range []string{"nfs-cp", "nfs-ls", "nfs-cat"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (libnfs-utils): %v", tool, err)
		}
	}
	var (
		mu    sync.Mutex
		calls []capturedCall
	)
	srv := nfsdtest.StartServer(t,
		nfsdtest.WithSetup(func(t testing.TB, root string) {
			for _, d := range []string{"Maildir", "Maildir/tmp", "Maildir/new", "Maildir/cur"} {
				if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(root, "Maildir/cur/1700000000.M1P1.host:2,S"), []byte("Subject: x\n\nhi\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}),
		nfsdtest.WithConfig(func(c *nfsd.Config) {
			c.ConfigureServer = func(s *nfsd.Server) {
				s.Gate = func(req *nfsd.Request) nfsd.Status {
					if req.Prog == nfs3.Program || req.Prog == nfs3.MountProgram {
						mu.Lock()
						calls = append(calls, capturedCall{req.Prog, req.Proc, bytes.Clone(req.Args.Rest())})
						mu.Unlock()
					}
					return nfsd.Status{}
				}
			}
		}))

	src := filepath.Join(t.TempDir(), "msg")
	if err := os.WriteFile(src, bytes.Repeat([]byte("0123456789abcdef"), 20000), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	run("nfs-cp", src, srv.URL("Maildir/tmp/1700000001.M2P2.host"))
	run("nfs-ls", "-R", srv.URL(""))
	run("nfs-cat", srv.URL("Maildir/tmp/1700000001.M2P2.host"))
	run("nfs-cp", srv.URL("Maildir/cur/1700000000.M1P1.host:2,S"), filepath.Join(t.TempDir(), "back"))

	mu.Lock()
	defer mu.Unlock()
	seen := map[string]int{}
	for _, c := range calls {
		a, target := argsFor(c.prog, c.proc)
		if a == nil {
			continue
		}
		d := xdr.NewDecoder(c.args)
		a.Decode(d)
		if err := d.Done(); err != nil {
			t.Errorf("prog %d proc %d: libnfs arguments do not decode: %v (%x)", c.prog, c.proc, err, c.args)
			continue
		}
		e := xdr.NewEncoder(nil)
		a.Encode(e)
		if !bytes.Equal(e.Bytes(), c.args) {
			t.Errorf("prog %d proc %d: re-encoding differs\n libnfs %x\n ours   %x", c.prog, c.proc, c.args, e.Bytes())
		}
		name := fmt.Sprintf("proc%d", c.proc)
		if c.prog == nfs3.Program {
			name = nfs3.Proc(c.proc).String()
		} else {
			name = "MNT" + name
		}
		seen[name]++
		if *captureSeeds && seen[name] <= 2 && len(c.args) <= 4096 {
			dir := filepath.Join("..", "internal", "nfs3", "testdata", "fuzz", target)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", c.args)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("libnfs-4.0-%s-%d", name, seen[name])), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, want := range []string{"MNTproc1", "LOOKUP", "GETATTR", "CREATE", "WRITE", "READ", "READDIRPLUS", "FSINFO"} {
		if seen[want] == 0 {
			t.Errorf("libnfs sent no %s (saw %v)", want, seen)
		}
	}
	t.Logf("checked libnfs arguments: %v", seen)
}
