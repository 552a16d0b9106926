package kerneltest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Modules lists the kernel modules the guest loads, in dependency order
// (read from each module's depends= field in Debian 12's 6.1 kernel): the
// virtio NIC, then the NFSv3 client.
var Modules = []string{
	"drivers/virtio/virtio_ring",
	"drivers/virtio/virtio",
	"drivers/virtio/virtio_pci_modern_dev",
	"drivers/virtio/virtio_pci_legacy_dev",
	"drivers/virtio/virtio_pci",
	"net/core/failover",
	"drivers/net/net_failover",
	"drivers/net/virtio_net",
	"net/sunrpc/sunrpc",
	"fs/nfs_common/grace",
	"fs/lockd/lockd",
	"fs/nfs_common/nfs_acl",
	"fs/netfs/netfs",
	"fs/fscache/fscache",
	"fs/nfs/nfs",
	"fs/nfs/nfsv3",
}

// Kernel is an unpacked Debian kernel package.
type Kernel struct {
	Version string // e.g. 6.1.0-56-amd64
	Package string // the .deb file name, e.g. linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb
	Vmlinuz string
	ModDir  string // .../lib/modules/VERSION/kernel
}

// CacheDir is where the kernel package is downloaded and unpacked, outside
// the repository: MAILNFS_KERNEL_CACHE or /var/cache/mailnfs-kernel.
func CacheDir() string {
	if d := os.Getenv("MAILNFS_KERNEL_CACHE"); d != "" {
		return d
	}
	return "/var/cache/mailnfs-kernel"
}

// FetchKernel downloads (once) the package that linux-image-amd64 depends on
// with apt-get download and unpacks it under CacheDir.
func FetchKernel(ctx context.Context) (*Kernel, error) {
	re := regexp.MustCompile(`Depends: (linux-image-[0-9][^\s]*)`)
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", "linux-image-amd64").Output()
	if err != nil || re.Find(out) == nil {
		// A fresh machine may have no package lists yet.
		if uout, uerr := exec.CommandContext(ctx, "apt-get", "update", "-qq").CombinedOutput(); uerr != nil {
			return nil, fmt.Errorf("apt-get update: %w\n%s", uerr, uout)
		}
		out, err = exec.CommandContext(ctx, "apt-cache", "depends", "linux-image-amd64").Output()
	}
	if err != nil {
		return nil, fmt.Errorf("apt-cache depends linux-image-amd64: %w", err)
	}
	m := re.FindSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("apt-cache depends linux-image-amd64: no linux-image dependency in %q", out)
	}
	pkg := string(m[1])
	version := strings.TrimPrefix(pkg, "linux-image-")
	dir := CacheDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	debs, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	if len(debs) == 0 {
		cmd := exec.CommandContext(ctx, "apt-get", "download", pkg)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("apt-get download %s: %w\n%s", pkg, err, out)
		}
		debs, _ = filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
		if len(debs) == 0 {
			return nil, fmt.Errorf("apt-get download %s left no .deb in %s", pkg, dir)
		}
	}
	unpacked := filepath.Join(dir, version)
	k := &Kernel{
		Version: version,
		Package: filepath.Base(debs[0]),
		Vmlinuz: filepath.Join(unpacked, "boot", "vmlinuz-"+version),
		ModDir:  filepath.Join(unpacked, "lib", "modules", version, "kernel"),
	}
	if _, err := os.Stat(k.Vmlinuz); err == nil {
		return k, nil
	}
	tmp := unpacked + ".tmp"
	os.RemoveAll(tmp)
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", debs[0], tmp).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("dpkg-deb -x %s: %w\n%s", debs[0], err, out)
	}
	if err := os.Rename(tmp, unpacked); err != nil {
		return nil, err
	}
	return k, nil
}

// BuildInitramfs writes an initramfs to path with the guest program as
// /init, a static busybox for ip(8), the modules and the guest's config.
func BuildInitramfs(k *Kernel, guestBin, busybox string, config []byte, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	c := &cpioWriter{w: bw}
	for _, d := range []string{"bin", "proc", "sys", "dev", "mnt", "tmp", "modules", "etc"} {
		c.Dir(d)
	}
	add := func(name, src string, perm uint32) error {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		c.File(name, perm, b)
		return nil
	}
	if err := add("init", guestBin, 0o755); err != nil {
		return err
	}
	if err := add("bin/busybox", busybox, 0o755); err != nil {
		return err
	}
	c.Symlink("bin/sh", "busybox")
	var order []string
	for _, m := range Modules {
		order = append(order, filepath.Base(m)+".ko")
		if err := add("modules/"+filepath.Base(m)+".ko", filepath.Join(k.ModDir, m+".ko"), 0o644); err != nil {
			return fmt.Errorf("module %s: %w", m, err)
		}
	}
	c.File("modules/order", 0o644, []byte(strings.Join(order, "\n")+"\n"))
	c.File("config.json", 0o644, config)
	c.File("etc/passwd", 0o644, []byte("root:x:0:0:root:/:/bin/sh\nmail:x:2001:2001::/:/bin/sh\n"))
	c.File("etc/group", 0o644, []byte("root:x:0:\nmail:x:2001:\n"))
	if err := c.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// BuildGuest compiles the guest program (package ./guest) as a static binary.
func BuildGuest(ctx context.Context, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, "./guest")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build guest: %w\n%s", err, b.String())
	}
	return nil
}
