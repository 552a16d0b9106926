package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// RunStep runs one step: it starts the driver command inside the server's
// namespace, hands it spec, calls atGo just before the measured part starts
// and atDone just after it ends (both may be nil), and returns the driver's
// result.
func (s *Server) RunStep(ctx context.Context, driver []string, spec StepSpec, atGo, atDone func() error) (*StepResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	argv := s.niced(driver[0], driver[1:]...)
	cmd := s.NS.Command(ctx, argv[0], argv[1:]...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// The driver's own CPU time over the measured part: on a small machine
	// it competes with the server, and this shows by how much.
	pid := cmd.Process.Pid
	var d0, d1 ProcSample
	goHook := func() error {
		if atGo != nil {
			if err := atGo(); err != nil {
				return err
			}
		}
		var err error
		d0, err = SampleProc(pid)
		return err
	}
	doneHook := func() error {
		var err error
		if d1, err = SampleProc(pid); err != nil {
			return err
		}
		if atDone != nil {
			return atDone()
		}
		return nil
	}
	res, perr := s.stepProtocol(stdin, stdout, spec, goHook, doneHook)
	stdin.Close()
	if perr != nil {
		cancel() // kill the driver rather than wait for it
	}
	werr := cmd.Wait()
	if perr != nil {
		return nil, fmt.Errorf("%s %s step: %w\n%s", s.Name, spec.Kind, perr, tailBytes(stderr.Bytes(), 2000))
	}
	if werr != nil {
		return nil, fmt.Errorf("%s %s step: driver: %w\n%s", s.Name, spec.Kind, werr, tailBytes(stderr.Bytes(), 2000))
	}
	res.DriverCPU = d1.CPU - d0.CPU
	return res, nil
}

func (s *Server) stepProtocol(in io.Writer, out io.Reader, spec StepSpec, atGo, atDone func() error) (*StepResult, error) {
	br := bufio.NewReader(out)
	expect := func(want string) error {
		l, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("waiting for %q from driver: %w", want, err)
		}
		if got := strings.TrimSpace(l); got != want {
			return fmt.Errorf("driver said %q, want %q", got, want)
		}
		return nil
	}
	say := func(v string) error { _, err := io.WriteString(in, v+"\n"); return err }
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	if err := say(string(b)); err != nil {
		return nil, err
	}
	if err := expect(lineReady); err != nil {
		return nil, err
	}
	if atGo != nil {
		if err := atGo(); err != nil {
			return nil, err
		}
	}
	if err := say(lineGo); err != nil {
		return nil, err
	}
	if err := expect(lineDone); err != nil {
		return nil, err
	}
	if atDone != nil {
		if err := atDone(); err != nil {
			return nil, err
		}
	}
	if err := say(lineFinish); err != nil {
		return nil, err
	}
	l, err := br.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("reading result from driver: %w", err)
	}
	var res StepResult
	if err := json.Unmarshal([]byte(l), &res); err != nil {
		return nil, fmt.Errorf("decoding driver result: %w", err)
	}
	return &res, nil
}

func tailBytes(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
