package nfsd

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// DefaultShutdownTimeout bounds the drain of Daemon.Shutdown when
// Config.ShutdownTimeout is zero.
const DefaultShutdownTimeout = 30 * time.Second

// Config is everything a mailnfsd needs: what cmd/mailnfsd's flags fill in,
// and what nfsdtest builds for in-process servers. Start takes it after
// Validate.
type Config struct {
	// ExportsFile is the exports file (FreeBSD or Linux dialect), re-read
	// by Daemon.Reload. Ignored when ExportsText is set.
	ExportsFile string
	// ExportsText, when not empty, is the exports table itself (the
	// embedded demo table, tests); error positions name it "exports".
	ExportsText string
	// HostsAllow is a hosts_access(5) file (hosts.allow, FreeBSD's single
	// file with ": allow"/": deny" options works too) guarding the
	// portmapper (daemon names "rpcbind", "portmap") and, when named,
	// MOUNT ("mountd") and NFS ("nfsd"); see HostsGate. Empty: no checks.
	// It must exist. Daemon.Reload re-reads it with the exports.
	HostsAllow string
	// HostsDeny is the hosts.deny of the classic pair, searched after
	// HostsAllow. Empty means "hosts.deny" in HostsAllow's directory; "none"
	// means no deny file. A missing file counts as empty.
	HostsDeny string

	// Listen is the IP address to serve on; empty means every address
	// (IPv4 and IPv6).
	Listen string
	// NFSPort is the NFS port; zero picks a free port.
	NFSPort int
	// MountPort is the MOUNT port; zero (or NFSPort) serves MOUNT on the
	// NFS listeners.
	MountPort int
	// PortmapPort is the portmapper's port; zero picks a free port unless
	// NoPortmap.
	PortmapPort int
	// NoPortmap serves no portmapper: Start registers NFS and MOUNT with the
	// system's rpcbind instead, and goes on with a warning if there is
	// none.
	NoPortmap bool
	// Rpcbind is the system rpcbind NoPortmap registers with; nil means
	// the zero RpcbindClient (its AF_LOCAL socket, then loopback TCP).
	Rpcbind *RpcbindClient
	// RpcbindCheck is how often, with NoPortmap, the daemon asks the
	// system rpcbind for its NFS mapping and registers again when it is
	// missing (an rpcbind started after mailnfsd, or restarted without
	// its warm-start file). Zero means DefaultRpcbindCheck; negative,
	// never.
	RpcbindCheck time.Duration

	// StateDir holds the handle key (created 0700 if missing). Required:
	// handles must verify after a restart.
	StateDir string
	// HandleSearch lets a server not run as root serve without
	// open_by_handle_at, finding uncached handles by searching each
	// export (maildirfs.Options.HandleSearch): for -demo only.
	HandleSearch bool
	// SyncWindow is the group commit wait of every store; zero syncs at
	// once.
	SyncWindow time.Duration
	// ShutdownTimeout bounds how long Run waits for calls in flight after
	// its context ends. Zero means DefaultShutdownTimeout.
	ShutdownTimeout time.Duration

	// ConfigureServer, if set, is called with the transport before it is
	// used, to tune it (Workers, timeouts, DRC sizes, Clock, Gate). Nil
	// keeps the transport's defaults. Logger is already set.
	ConfigureServer func(*Server)

	// Instrument, if set, wraps each program (NFS, MOUNT, portmap) before
	// it is registered with the transport, e.g. InstrumentProgram for
	// metrics, so every call from the first one on is seen. Nil registers
	// the programs as they are.
	Instrument func(Program) Program

	// Denied, if set, is called for every refused call or mount with a
	// short name of the rule that refused it, for metrics
	// (Metrics.Denied): "hosts_access:FILE:LINE:COL" (hosts.allow or
	// hosts.deny), "mount:not_exported", "mount:bad_path",
	// "mount:host:EXPORT" (the client is not in the export's rules),
	// "mount:alldirs:EXPORT" (a subdirectory without -alldirs),
	// "nfs:host:EXPORT" (an NFS call on a handle of an export the client
	// may not use) and "mount:insecure_port:EXPORT" and
	// "nfs:insecure_port:EXPORT" (a MNT or NFS call from port 1024 or
	// above where the client's rule says secure). It must not block.
	Denied func(rule string)

	// Logger receives everything. Nil discards.
	Logger *slog.Logger

	// Started, if set, is called by Run once the daemon serves (the demo
	// prints how to reach it).
	Started func(*Daemon)

	// ParseOptions adjust exports parsing. Nil resolves host names with
	// the system resolver at load time and user names with os/user.
	ParseOptions *ParseOptions
}

// Validate checks c for mistakes Start would otherwise meet late.
func (c *Config) Validate() error {
	var errs []error
	if c.ExportsFile == "" && c.ExportsText == "" {
		errs = append(errs, errors.New("no exports file given"))
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("no state directory given (it holds the handle key)"))
	}
	if c.Listen != "" {
		if _, err := netip.ParseAddr(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("listen address %q is not an IP address", c.Listen))
		}
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"NFS", c.NFSPort}, {"MOUNT", c.MountPort}, {"portmap", c.PortmapPort}} {
		if p.v < 0 || p.v > 65535 {
			errs = append(errs, fmt.Errorf("%s port %d is not in 0..65535", p.name, p.v))
		}
	}
	if c.ShutdownTimeout < 0 {
		errs = append(errs, fmt.Errorf("shutdown timeout %v is negative", c.ShutdownTimeout))
	}
	return errors.Join(errs...)
}
