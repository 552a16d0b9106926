package nfsd

import (
	"sync/atomic"

	"github.com/mailnfs/mailnfs/internal/nfs3"
)

// n3Statuses are the nfsstat3 values NFS3 counts individually; any other
// is counted under "other".
var n3Statuses = []nfs3.Status{
	nfs3.StatusOK, nfs3.StatusPerm, nfs3.StatusNoEnt, nfs3.StatusIO, nfs3.StatusNXIO, nfs3.StatusAcces,
	nfs3.StatusExist, nfs3.StatusXDev, nfs3.StatusNoDev, nfs3.StatusNotDir, nfs3.StatusIsDir,
	nfs3.StatusInval, nfs3.StatusFBig, nfs3.StatusNoSpc, nfs3.StatusROFS, nfs3.StatusMLink,
	nfs3.StatusNameTooLong, nfs3.StatusNotEmpty, nfs3.StatusDQuot, nfs3.StatusStale, nfs3.StatusRemote,
	nfs3.StatusBadHandle, nfs3.StatusNotSync, nfs3.StatusBadCookie, nfs3.StatusNotSupp,
	nfs3.StatusTooSmall, nfs3.StatusServerFault, nfs3.StatusBadType, nfs3.StatusJukebox,
}

const (
	n3NumProcs  = int(nfs3.ProcCommit) + 1
	n3NumStatus = 30 // len(n3Statuses) + "other"
)

// n3StatusIndex maps a status to its counter; read-only after init.
var n3StatusIndex = func() map[nfs3.Status]int {
	m := make(map[nfs3.Status]int, len(n3Statuses))
	for i, s := range n3Statuses {
		m[s] = i
	}
	return m
}()

// n3Counters counts NFSv3 replies by procedure and status, lock-free.
type n3Counters struct {
	c [n3NumProcs][n3NumStatus]atomic.Uint64
}

func (c *n3Counters) add(proc nfs3.Proc, st nfs3.Status) {
	if int(proc) >= n3NumProcs {
		return
	}
	i := n3NumStatus - 1
	if st == nfs3.StatusOK {
		i = 0 // the common case without a map lookup
	} else if j, ok := n3StatusIndex[st]; ok {
		i = j
	}
	c.c[proc][i].Add(1)
}

// NFS3Stats is a snapshot of NFS3's reply counters.
type NFS3Stats struct {
	// Replies counts NFSv3 replies sent with results, by procedure name
	// and nfsstat3 name, e.g. Replies["LOOKUP"]["NFS3ERR_NOENT"]. Calls
	// answered GARBAGE_ARGS are not counted here (the transport counts
	// calls). Statuses outside RFC 1813 are counted as "other".
	Replies map[string]map[string]uint64
}

// Stats returns a snapshot of the reply counters. It is safe to call
// concurrently with Serve.
func (n *NFS3) Stats() NFS3Stats {
	s := NFS3Stats{Replies: make(map[string]map[string]uint64)}
	for p := range n3NumProcs {
		for i := range n3NumStatus {
			v := n.counters.c[p][i].Load()
			if v == 0 {
				continue
			}
			name := "other"
			if i < len(n3Statuses) {
				name = n3Statuses[i].String()
			}
			pn := nfs3.Proc(p).String()
			if s.Replies[pn] == nil {
				s.Replies[pn] = make(map[string]uint64)
			}
			s.Replies[pn][name] = v
		}
	}
	return s
}
