package maildirfs_test

import (
	"fmt"
	"testing"

	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

// BenchmarkDeliver1 measures one deliverer's latency per delivery
// (GUARDED create with the mode, FILE_SYNC write, rename into new/): the
// serial sync waits of one delivery, which bound a lone client's rate.
func BenchmarkDeliver1(b *testing.B) {
	s := mdtest.New(b)
	tmp, nw := lookup(b, s, "Maildir", "tmp"), lookup(b, s, "Maildir", "new")
	body := make([]byte, 4096)
	before := s.Stats()
	b.ResetTimer()
	for i := range b.N {
		if err := deliver(s, tmp, nw, root, fmt.Sprintf("1700000000.M%dP1.serial", i), body); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	st := s.Stats()
	b.ReportMetric(float64(st.FileSyncs+st.DirSyncs-before.FileSyncs-before.DirSyncs)/float64(b.N), "fsyncs/op")
}
