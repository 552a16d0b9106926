package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mailnfs/mailnfs/nfsd"
)

// checkMetricsAddr checks the form of a -metrics address (host:port, the
// host optional, the port a number up to 65535 or a service name) without
// listening, so that -check-config (the systemd unit's ExecStartPre)
// refuses what the start would. Empty: no metrics.
func checkMetricsAddr(addr string) error {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = net.LookupPort("tcp", port)
	}
	if err != nil {
		return fmt.Errorf("-metrics %q: want HOST:PORT, e.g. 127.0.0.1:9139: %v", addr, err)
	}
	return nil
}

// setupMetrics serves Prometheus metrics on addr and hooks them into cfg:
// every program is instrumented from the first call (cfg.Instrument), and
// the transport's and the stores' snapshots are collected once the daemon
// runs (cfg.Started, chained after any Started already set). The listener
// is opened here so a bad address fails at start. stop shuts the HTTP
// server down.
func setupMetrics(addr string, cfg *nfsd.Config, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-metrics %s: %w", addr, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := nfsd.NewMetrics(reg)
	cfg.Instrument = func(p nfsd.Program) nfsd.Program { return nfsd.InstrumentProgram(p, m) }
	cfg.Denied = m.Denied
	started := cfg.Started
	cfg.Started = func(d *nfsd.Daemon) {
		m.CollectServer(d.Server)
		m.CollectExports(d.Exports)
		if started != nil {
			started(d)
		}
	}
	hs := &http.Server{Handler: nfsd.MetricsHandler(reg), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Error("metrics server failed", "addr", addr, "err", err)
		}
	}()
	log.Info("serving metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
		<-done
	}, nil
}
