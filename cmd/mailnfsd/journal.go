package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// journalStream reports whether f is the systemd journal's stream:
// systemd sets JOURNAL_STREAM to the device and inode ("DEV:INO") of the
// stream it connects a service's stdout and stderr to (systemd.exec(5)),
// and a process that finds its stderr to be that stream may mark each
// line with its syslog priority.
func journalStream(f *os.File) bool {
	env := os.Getenv("JOURNAL_STREAM")
	if env == "" {
		return false
	}
	var dev, ino uint64
	if n, err := fmt.Sscanf(env, "%d:%d", &dev, &ino); n != 2 || err != nil {
		return false
	}
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil {
		return false
	}
	return uint64(st.Dev) == dev && uint64(st.Ino) == ino
}

// priorityHandler starts each record with its syslog priority as
// sd-daemon(3) prefixes do ("<3>" for an error, "<4>" a warning, "<6>"
// info, "<7>" debug), which journald reads and strips (SyslogLevelPrefix=,
// on by default): without them every line of mailnfsd's is at the
// stream's level, info, and `journalctl -p err` shows none of its errors.
type priorityHandler struct {
	slog.Handler
	w *priorityWriter
}

// priorityWriter writes each record (one Write, as slog's handlers do)
// after the prefix of its level; mu holds the level from Handle to Write.
type priorityWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
}

func (p *priorityWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, p.prefix); err != nil {
		return 0, err
	}
	return p.w.Write(b)
}

// newPriorityHandler returns a handler writing to w through inner, made
// by newInner on the writer that adds the prefixes.
func newPriorityHandler(w io.Writer, newInner func(io.Writer) slog.Handler) slog.Handler {
	pw := &priorityWriter{w: w}
	return &priorityHandler{Handler: newInner(pw), w: pw}
}

func syslogPrefix(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "<3>"
	case l >= slog.LevelWarn:
		return "<4>"
	case l >= slog.LevelInfo:
		return "<6>"
	}
	return "<7>"
}

func (h *priorityHandler) Handle(ctx context.Context, r slog.Record) error {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	h.w.prefix = syslogPrefix(r.Level)
	return h.Handler.Handle(ctx, r)
}

func (h *priorityHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &priorityHandler{Handler: h.Handler.WithAttrs(attrs), w: h.w}
}

func (h *priorityHandler) WithGroup(name string) slog.Handler {
	return &priorityHandler{Handler: h.Handler.WithGroup(name), w: h.w}
}
