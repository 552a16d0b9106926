package suite

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"
	"time"
)

// FuzzDecodeJob feeds arbitrary bytes to the front end's job decoder: it
// must refuse what RunJob could not run (no panics, no division by zero).
func FuzzDecodeJob(f *testing.F) {
	good, _ := json.Marshal(Job{Workload: WorkMixed, Spec: "dir:/nonexistent", Mailboxes: []string{"a", "b"},
		Params: DefaultParams(), Duration: time.Second, Deliverers: 2, SessionWorkers: []int{0, 1}, SessionTotal: 2})
	f.Add(good)
	f.Add([]byte(`{"workload":"pop3","duration":1,"session_workers":[0],"session_total":0,"mailboxes":["x"]}`))
	f.Add([]byte(`{"workload":"postmark","duration":1000,"params":{"pm_low":10,"pm_high":5,"pm_files":1}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var job Job
		if err := decodeJob(json.NewDecoder(bytes.NewReader(b)), &job); err != nil {
			return
		}
		// An accepted job has sane shapes.
		if job.Duration <= 0 || (len(job.SessionWorkers) > 0 && job.SessionTotal <= 0) {
			t.Fatalf("accepted a bad job: %+v", job)
		}
		for _, g := range job.SessionWorkers {
			if g < 0 || g >= job.SessionTotal {
				t.Fatalf("accepted session worker %d of %d", g, job.SessionTotal)
			}
		}
	})
}

// FuzzReport feeds arbitrary JSON reports to every report writer (a
// compare of two runs reads files from elsewhere): none may panic.
func FuzzReport(f *testing.F) {
	var s OpStats
	for i := 1; i < 100; i++ {
		s.observe(time.Duration(i)*time.Millisecond, time.Duration(i)*time.Millisecond, 100, nil)
	}
	s.Op = "deliver"
	good, _ := json.Marshal(Report{Version: 1, Workload: WorkDeliver, Results: []*Result{{Target: "self", Ops: []OpStats{s}, Elapsed: time.Second, Verify: &Verification{OK: true}}}})
	f.Add(good)
	f.Add([]byte(`{"version":1,"workload":"postmark","results":[{"target":"x","ops":[{"op":"a","count":5,"hist":[1,2],"max_ns":-5,"timeline":[9]}],"extra":{"tx_seconds":-1}}]}`))
	f.Add([]byte(`{"version":1,"results":[null]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var rep Report
		if json.Unmarshal(b, &rep) != nil {
			return
		}
		for _, r := range rep.Results {
			if r == nil {
				return // ReadJSONFile's callers get what JSON allows; nil results are refused below
			}
		}
		_ = WriteTable(io.Discard, &rep)
		_ = WriteHTML(io.Discard, &rep)
		_ = Compare(io.Discard, &rep, &rep)
		_ = rep.Failed()
	})
}
