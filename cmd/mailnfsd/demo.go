package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/mailnfs/mailnfs/nfsd"
)

// demoExports is the exports table of -demo: the demo export, read-write to
// loopback clients, root not squashed so that `make run` as root can
// deliver with libnfs.
const demoExports = `# mailnfsd -demo: the sample export, for loopback clients only.
%s 127.0.0.0/8(rw,no_root_squash)
`

// Demo ports: the standard ones when root and free, else these.
const (
	demoNFSPort     = 20490
	demoPortmapPort = 1110
)

// demoMaildir is the sample user's Maildir below the export (a two-level
// hashed layout, as large mail stores use).
const demoMaildir = "12/34-tevie"

const welcome = `From: mailnfsd <postmaster@localhost>
To: tevie@localhost
Subject: Welcome to mailnfs
Date: %s
Message-ID: <%d.mailnfs-demo@localhost>

This message was delivered into a Maildir that mailnfsd serves over NFSv3.
Read it with nfs-cat, or mount the export and point a mail reader at it.
`

// setupDemo creates DIR/export with the sample Maildir and sets cfg up to
// serve it: embedded exports, loopback, state under DIR, and ports 2049 and
// 111 when root and free, 20490 and 1110 otherwise. Flags given explicitly
// win.
func setupDemo(f *flags, cfg *nfsd.Config, stdout io.Writer) error {
	dir, err := filepath.Abs(f.demo)
	if err != nil {
		return err
	}
	export := filepath.Join(dir, "export")
	if err := writeDemoMaildir(filepath.Join(export, demoMaildir)); err != nil {
		return err
	}
	if !f.set["exports"] {
		cfg.ExportsText = fmt.Sprintf(demoExports, export)
	}
	if !f.set["state-dir"] {
		cfg.StateDir = filepath.Join(dir, "state")
	}
	if !f.set["listen"] {
		cfg.Listen = "127.0.0.1"
	}
	root := os.Geteuid() == 0
	// Not root, the store may not open files by handle: it finds them by
	// searching the small demo export instead.
	cfg.HandleSearch = true
	if !f.set["nfs-port"] {
		cfg.NFSPort = demoPort(stdout, cfg.Listen, "NFS", 2049, demoNFSPort, root)
	}
	if !f.set["portmap-port"] {
		cfg.PortmapPort = demoPort(stdout, cfg.Listen, "portmap", 111, demoPortmapPort, root)
		cfg.NoPortmap = false
	}
	return nil
}

// demoPort returns std if root and free on TCP and UDP, else alt.
func demoPort(w io.Writer, host, what string, std, alt int, root bool) int {
	if !root {
		fmt.Fprintf(w, "not root: serving %s on port %d instead of %d\n", what, alt, std)
		return alt
	}
	addr := net.JoinHostPort(host, strconv.Itoa(std))
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		ln.Close()
		var pc net.PacketConn
		if pc, err = net.ListenPacket("udp", addr); err == nil {
			pc.Close()
			return std
		}
	}
	fmt.Fprintf(w, "port %d is busy (%v): serving %s on port %d instead\n", std, err, what, alt)
	return alt
}

// writeDemoMaildir creates tmp, new and cur and, if the Maildir holds no
// message yet, delivers the welcome message the Maildir way: write in tmp,
// sync, rename into new.
func writeDemoMaildir(md string) error {
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(md, sub), 0o755); err != nil {
			return err
		}
	}
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(md, sub))
		if err != nil {
			return err
		}
		if len(ents) > 0 {
			return nil
		}
	}
	now := time.Now()
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	body := fmt.Sprintf(welcome, now.Format(time.RFC1123Z), now.UnixNano())
	name := fmt.Sprintf("%d.M%dP%d.%s,S=%d", now.Unix(), now.Nanosecond()/1000, os.Getpid(), host, len(body))
	tmp := filepath.Join(md, "tmp", name)
	fh, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = fh.WriteString(body)
	if err == nil {
		err = fh.Sync()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(md, "new", name))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// printDemo tells how to reach the demo server.
func printDemo(w io.Writer, d *nfsd.Daemon, cfg nfsd.Config) {
	table := d.Exports.Table()
	if len(table.Exports) == 0 {
		return
	}
	export := table.Exports[0].Path
	host := d.NFSAddr().Addr().String()
	nfsPort, mountPort := d.NFSAddr().Port(), d.MountAddr().Port()
	pm := d.PortmapAddr()
	if mountPort == nfsPort {
		fmt.Fprintf(w, "\nmailnfsd demo: serving %s to 127.0.0.0/8 (NFSv3 and MOUNT on port %d", export, nfsPort)
	} else {
		fmt.Fprintf(w, "\nmailnfsd demo: serving %s to 127.0.0.0/8 (NFSv3 on port %d, MOUNT on port %d", export, nfsPort, mountPort)
	}
	if pm.IsValid() {
		fmt.Fprintf(w, ", portmap on port %d", pm.Port())
	}
	fmt.Fprintf(w, ")\n  sample Maildir:  %s/%s (a welcome message in new/)\n\n", export, demoMaildir)
	url := func(p string) string {
		return fmt.Sprintf("nfs://%s%s?version=3&nfsport=%d&mountport=%d", host, p, nfsPort, mountPort)
	}
	fmt.Fprintf(w, "  libnfs:   nfs-ls '%s'\n", url(export+"/"+demoMaildir+"/new"))
	fmt.Fprintf(w, "            (nfs-cat the file it lists; URL: %s)\n", url(export))
	if pm.IsValid() && pm.Port() == 111 {
		fmt.Fprintf(w, "  rpcinfo:  rpcinfo -p %s\n  showmount: showmount -e %s\n", host, host)
	} else {
		// rpcinfo (even with -n) and showmount always ask port 111 first.
		fmt.Fprintf(w, "  rpcinfo -p and showmount -e need the portmapper on port 111 (run as root with port 111 free)\n")
	}
	fmt.Fprintf(w, "  Linux:    mount -t nfs -o vers=3,tcp,nolock,port=%d,mountport=%d %s:%s /mnt\n", nfsPort, mountPort, host, export)
	// FreeBSD's mount_nfs has no option for the MOUNT port: it asks the
	// portmapper on port 111 (clnt_tp_create).
	if pm.IsValid() && pm.Port() == 111 {
		fmt.Fprintf(w, "  FreeBSD:  mount -t nfs -o nfsv3,tcp,nolockd,port=%d %s:%s /mnt   (finds MOUNT through the portmapper)\n", nfsPort, host, export)
	} else {
		fmt.Fprintf(w, "  FreeBSD:  mount -t nfs -o nfsv3,tcp,nolockd,port=%d %s:%s /mnt   (needs the portmapper on port 111: mount_nfs finds MOUNT only through it)\n", nfsPort, host, export)
	}
	fmt.Fprintf(w, "\nStop with Ctrl-C or SIGTERM; SIGHUP re-reads the exports.\n")
}
