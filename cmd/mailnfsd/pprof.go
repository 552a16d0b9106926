package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
)

// pprofEnv names the environment variable that, when set to a loopback
// host:port (e.g. 127.0.0.1:6060), makes mailnfsd serve net/http/pprof
// there for profiling (go tool pprof http://ADDR/debug/pprof/profile).
// It is a debugging aid, not a flag, so that it needs no change to the
// command line parsing; addresses outside loopback are refused.
const pprofEnv = "MAILNFSD_PPROF"

func init() {
	addr := os.Getenv(pprofEnv)
	if addr == "" {
		return
	}
	if err := servePprof(addr); err != nil {
		fmt.Fprintf(os.Stderr, "mailnfsd: %s=%q: %v\n", pprofEnv, addr, err)
		os.Exit(2)
	}
}

// servePprof listens on addr (loopback only) and serves the pprof handlers
// for the life of the process: the listener and its goroutine end with it.
func servePprof(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("want a loopback IP address and port")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	go http.Serve(ln, mux) //nolint:errcheck // debug server lives as long as the process
	return nil
}
