package bench

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of the times in /proc/PID/stat. It is 100
// on every Linux architecture Go supports (the kernel fixes it for the ABI).
const clockTicks = 100

// ProcSample is one reading of a process's resource usage.
type ProcSample struct {
	// CPU is user + system time of all threads, plus that of waited-for
	// children (utime+stime+cutime+cstime), at 1/100 s resolution.
	CPU time.Duration
	// PeakRSS is VmHWM in bytes: the resident set's high-water mark since
	// the process started or since the last ResetPeakRSS.
	PeakRSS int64
	// RSS is VmRSS in bytes.
	RSS int64
}

// SampleProc reads /proc/PID/stat and /proc/PID/status.
func SampleProc(pid int) (ProcSample, error) {
	var s ProcSample
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	cpu, err := parseStatCPU(stat)
	if err != nil {
		return s, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	s.CPU = cpu
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	s.PeakRSS, _ = statusKB(status, "VmHWM:")
	s.RSS, _ = statusKB(status, "VmRSS:")
	return s, nil
}

// parseStatCPU returns utime+stime+cutime+cstime from a /proc/PID/stat line.
// The command name (field 2) is in parentheses and may contain spaces and
// parentheses, so fields are counted from the last ')'.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("no ')' in stat line")
	}
	f := strings.Fields(string(stat[i+1:]))
	// After ")": field 3 (state) is f[0], so field n is f[n-3];
	// utime=14, stime=15, cutime=16, cstime=17.
	if len(f) < 15 {
		return 0, fmt.Errorf("short stat line (%d fields)", len(f))
	}
	// A Duration holds maxTicks ticks of 10 ms (2,900 years of CPU):
	// anything above is not a real reading. The product is taken with
	// the tick's length, not a second (which overflowed above 2.9 years).
	const tick = time.Second / clockTicks
	const maxTicks = math.MaxInt64 / int64(tick)
	var ticks int64
	for n := 14; n <= 17; n++ {
		v, err := strconv.ParseInt(f[n-3], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("field %d: %w", n, err)
		}
		if v < 0 || v > maxTicks-ticks {
			return 0, fmt.Errorf("field %d: %d ticks out of range", n, v)
		}
		ticks += v
	}
	return time.Duration(ticks) * tick, nil
}

// statusKB returns the value of a "Key:   123 kB" line of /proc/PID/status in bytes.
func statusKB(status []byte, key string) (int64, bool) {
	for line := range strings.SplitSeq(string(status), "\n") {
		if !strings.HasPrefix(line, key) {
			continue
		}
		f := strings.Fields(line[len(key):])
		if len(f) == 0 {
			return 0, false
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, false
		}
		return v * 1024, true
	}
	return 0, false
}

// ResetPeakRSS resets the process's VmHWM to its current RSS (writing "5" to
// /proc/PID/clear_refs, Linux >= 4.0), so the next SampleProc reports the
// peak of what ran in between.
func ResetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}
