package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailnfs/mailnfs/client"
	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/portmap"
	"github.com/mailnfs/mailnfs/internal/rpc"
)

// errMountTest means at least one step of mount-test failed; the steps
// printed say which.
var errMountTest = errors.New("the storage box failed the test (see above)")

// mountTest walks the chain a client needs: portmapper, MOUNT, NFS. Each
// step prints "ok" or "FAIL" with a hint about the likely cause.
func (r *runner) mountTest(ctx context.Context, args []string) error {
	if err := need(args, 1, "URL or HOST[:PORT]"); err != nil {
		return err
	}
	var t client.Target
	if strings.HasPrefix(args[0], "nfs://") {
		var err error
		if t, err = client.ParseURL(args[0]); err != nil {
			return usageError{err.Error()}
		}
	} else {
		host, port := args[0], strconv.Itoa(portmap.Port)
		if h, p, err := net.SplitHostPort(args[0]); err == nil {
			host, port = h, p
		} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
			// An IPv6 address in brackets without a port, as in a URL.
			host = host[1 : len(host)-1]
		}
		n, err := strconv.Atoi(port)
		if err != nil || n <= 0 || n > 65535 {
			return usageError{fmt.Sprintf("bad port in %q", args[0])}
		}
		t = client.Target{Host: host, PortmapPort: n}
	}
	failed := false
	step := func(name string, err error, ok string) bool {
		if err == nil {
			fmt.Fprintf(r.stdout, "ok    %-28s %s\n", name, ok)
			return true
		}
		failed = true
		fmt.Fprintf(r.stdout, "FAIL  %-28s %v\n", name, err)
		if h := hint(err); h != "" {
			fmt.Fprintf(r.stdout, "      hint: %s\n", h)
		}
		return false
	}
	auth := client.AuthSys(r.cfg.Hostname, 0, 0)
	if t.UID != nil || t.GID != nil {
		var uid, gid uint32
		if t.UID != nil {
			uid = *t.UID
		}
		if t.GID != nil {
			gid = *t.GID
		}
		auth = client.AuthSys(r.cfg.Hostname, uid, gid)
	}
	call := func(addr string, prog, vers, proc uint32) error {
		c, err := client.DialRPC(ctx, addr, client.RPCOptions{Timeout: 10 * time.Second, ReconnectTimeout: time.Second})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Call(ctx, prog, vers, proc, auth, nil)
		return err
	}

	if t.NFSPort == 0 || t.MountPort == 0 {
		pm := t.PortmapAddr()
		if !step("portmapper NULL (TCP)", call(pm, portmap.Prog, portmap.V2, portmap.PmapProcNull), pm) {
			fmt.Fprintf(r.stdout, "      (GETPORT below also tries UDP and rpcbind v3)\n")
		}
		var trace client.PortmapTrace
		if t.MountPort == 0 {
			p, err := client.GetPort(ctx, pm, nfs3.MountProgram, nfs3.MountV3, &trace)
			if step("GETPORT MOUNT v3 tcp", err, "port "+strconv.Itoa(p)) {
				t.MountPort = p
			}
		}
		if t.NFSPort == 0 {
			p, err := client.GetPort(ctx, pm, nfs3.Program, nfs3.Version, &trace)
			if step("GETPORT NFS v3 tcp", err, "port "+strconv.Itoa(p)) {
				t.NFSPort = p
			}
		}
		for _, l := range trace {
			fmt.Fprintf(r.stdout, "      %s\n", l)
		}
	}
	if t.MountPort == 0 || t.NFSPort == 0 {
		return errMountTest
	}
	mountAddr := net.JoinHostPort(t.Host, strconv.Itoa(t.MountPort))
	nfsAddr := net.JoinHostPort(t.Host, strconv.Itoa(t.NFSPort))
	step("MOUNT NULL", call(mountAddr, nfs3.MountProgram, nfs3.MountV3, 0), mountAddr)
	exports, err := client.Exports(ctx, mountAddr, auth)
	var dirs []string
	for _, x := range exports {
		g := "(everyone)"
		if len(x.Groups) > 0 {
			g = strings.Join(x.Groups, ",")
		}
		dirs = append(dirs, x.Dir+" "+g)
	}
	step("MOUNT EXPORT", err, strings.Join(dirs, "; "))
	path := t.Path
	if path == "" || path == "/" {
		if len(exports) == 0 {
			step("MNT", errors.New("no path given and no export listed"), "")
			return errMountTest
		}
		path = exports[0].Dir
	}
	mnt, err := client.Mnt(ctx, mountAddr, auth, path)
	flavors := fmt.Sprint(mnt.AuthFlavors)
	if !step("MNT "+path, err, fmt.Sprintf("handle %d bytes, flavors %s", len(mnt.Handle), flavors)) {
		return errMountTest
	}
	step("NFS NULL", call(nfsAddr, nfs3.Program, nfs3.Version, 0), nfsAddr)
	t.Path = path
	c, err := client.DialTarget(ctx, t, client.Options{Auth: &auth, Hostname: r.cfg.Hostname, Logger: r.log})
	if step("NFS FSINFO of the root", err, "") {
		defer c.Close()
		a, err := c.Getattr(ctx, c.Root())
		if step("NFS GETATTR of the root", err, "") {
			fmt.Fprintf(r.stdout, "      root: mode %o uid %d gid %d fileid %d; rtmax %d wtmax %d\n",
				a.Mode, a.UID, a.GID, a.FileID, c.MaxRead(), c.MaxWrite())
		}
		st, err := c.FSStat(ctx, c.Root())
		if step("NFS FSSTAT", err, "") {
			fmt.Fprintf(r.stdout, "      %d of %d bytes free, %d of %d files free\n", st.ABytes, st.TBytes, st.AFiles, st.TFiles)
		}
	}
	if failed {
		return errMountTest
	}
	fmt.Fprintln(r.stdout, "the storage box answers every step")
	return nil
}

// hint turns a failure into the likely cause.
func hint(err error) string {
	var re *rpc.ReplyError
	var ce *client.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "nothing listens there: is mailnfsd running, on this port? (give ?nfsport=&mountport= to skip the portmapper)"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, syscall.EHOSTUNREACH):
		return "no answer: a firewall, a wrong address, or an overloaded server"
	case errors.Is(err, client.ErrNotRegistered):
		return "the portmapper runs but the program is not registered: mailnfsd not started, or registered with another portmapper"
	case errors.As(err, &re) && re.Denied && re.Auth == rpc.AuthTooWeak:
		return "refused by policy (hosts.allow/hosts.deny or exports): this client address is not allowed"
	case errors.As(err, &re) && re.Denied:
		return "credentials refused: check uid=/gid= and the export's sec= option"
	case errors.As(err, &re) && (re.Accept == rpc.ProgUnavail || re.Accept == rpc.ProgMismatch):
		return "the port answers but does not serve this program/version: wrong port?"
	case errors.As(err, &ce) && ce.Prog == rpc.ProgMount && ce.Status == 13:
		return "MNT3ERR_ACCES: the exports file does not allow this client address (or needs a reserved port)"
	case errors.As(err, &ce) && ce.Prog == rpc.ProgMount && ce.Status == 2:
		return "MNT3ERR_NOENT: no such export or directory; see the EXPORT list above"
	case errors.As(err, &ce) && (ce.Status == client.NFS3ErrAcces || ce.Status == client.NFS3ErrPerm):
		return "permission denied for this uid/gid (root squashed?)"
	}
	return ""
}
