package main

import (
	"bytes"
	"context"

	"github.com/mailnfs/mailnfs/bench"
	"github.com/mailnfs/mailnfs/client"
)

// dialClient opens a bench.Session on package client: Deliver is
// client.Deliver (reference.md §7.6: GUARDED create with the mode in
// tmp/, WRITE and COMMIT as the client decides, RENAME into new/), ListPlus is
// ReadDirPlusAll with the client's own page sizes.
func dialClient(ctx context.Context, url string) (bench.Session, error) {
	c, err := client.Dial(ctx, url, client.Options{})
	if err != nil {
		return nil, err
	}
	return clientSession{c}, nil
}

type clientSession struct{ c *client.Client }

// Deliver implements bench.Session.
func (s clientSession) Deliver(ctx context.Context, mailbox string, body []byte) error {
	_, err := s.c.Deliver(ctx, mailbox, bytes.NewReader(body))
	return err
}

// ListPlus implements bench.Session.
func (s clientSession) ListPlus(ctx context.Context, dir string) (int, error) {
	fh, _, err := s.c.LookupPath(ctx, dir)
	if err != nil {
		return 0, err
	}
	n := 0
	err = s.c.ReadDirPlusAll(ctx, fh, func(es []client.DirEntryPlus) bool {
		n += len(es)
		return true
	})
	return n, err
}

// Close implements bench.Session.
func (s clientSession) Close() error { return s.c.Close() }
