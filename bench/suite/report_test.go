package suite

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// twoDirReport runs a short deliver workload against two local targets.
func twoDirReport(t *testing.T) *Report {
	t.Helper()
	p := smallParams()
	return runSmall(t, Config{Workload: WorkDeliver, Params: p, Duration: 400 * time.Millisecond, Rounds: 2,
		Targets: []string{"dir:" + t.TempDir(), "dir:" + t.TempDir()}})
}

func TestReportsJSONCompareTable(t *testing.T) {
	t.Parallel()
	rep := twoDirReport(t)
	dir := t.TempDir()
	a := filepath.Join(dir, "a.json")
	if err := WriteJSONFile(a, rep); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSONFile(a)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Results) != 2 || back.Results[0].Ops[0].Count != rep.Results[0].Ops[0].Count || back.Results[0].Verify == nil || !back.Results[0].Verify.OK {
		t.Fatalf("JSON round trip lost data: %+v", back.Results)
	}
	// b: the same run with every deliver count doubled over the same time.
	b := *back
	r0 := *back.Results[0]
	r0.Ops = append([]OpStats(nil), r0.Ops...)
	r0.Ops[0].Count *= 2
	b.Results = []*Result{&r0, back.Results[1]}
	bf := filepath.Join(dir, "b.json")
	if err := WriteJSONFile(bf, &b); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := Main(context.Background(), "mailnfs-bench", []string{"compare", a, bf}, &out, &errb); code != ExitOK {
		t.Fatalf("compare: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "+100.0%") || !strings.Contains(out.String(), "+0.0%") {
		t.Errorf("compare shows no +100%% / +0%% deltas:\n%s", out.String())
	}
	var tab bytes.Buffer
	if err := WriteTable(&tab, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ops/s", "MB/s", "p50", "p95", "p99", "max", "errors", "x dir:", "verification dir:"} {
		if !strings.Contains(tab.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tab.String())
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var s OpStats
	for i := 1; i <= 1000; i++ {
		s.observe(0, time.Duration(i)*time.Microsecond, 1, nil)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{.5, 500 * time.Microsecond}, {.95, 950 * time.Microsecond}, {.99, 990 * time.Microsecond}} {
		got := s.Quantile(c.q)
		if d := float64(got-c.want) / float64(c.want); d < -0.1 || d > 0.1 {
			t.Errorf("p%v = %v, want %v ±10%%", c.q*100, got, c.want)
		}
	}
	if s.MaxNs != int64(time.Millisecond) || s.Quantile(1) != time.Millisecond {
		t.Errorf("max %v, q(1) %v", time.Duration(s.MaxNs), s.Quantile(1))
	}
}

// findChromium returns a headless-capable Chromium, installing the Debian
// package when it is missing and we are root.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	why := "chromium is not installed and we are not root"
	if os.Geteuid() == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "apt-get", "install", "-y", "chromium").CombinedOutput()
		if p, lerr := exec.LookPath("chromium"); lerr == nil {
			return p
		}
		why = "apt-get install -y chromium failed: " + err.Error() + ": " + lastLines(string(out), 5)
	}
	if os.Getenv("MAILNFS_REQUIRE_ROOT_TESTS") == "1" {
		t.Fatal(why)
	}
	t.Skip(why)
	return ""
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(len(l)-n, 0):], "\n")
}

// TestHTMLReportInChromium renders the HTML report in headless Chromium
// and checks the screenshot shows the charts: not blank, many colours, and
// the chart colour of each target present.
func TestHTMLReportInChromium(t *testing.T) {
	t.Parallel()
	rep := twoDirReport(t)
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	f, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteHTML(f, rep); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(src, []byte("<script")) || regexp.MustCompile(`(src|href)="?(https?:)?//`).Match(src) {
		t.Error("report is not self-contained (scripts or external resources)")
	}
	if n := bytes.Count(src, []byte("<svg")); n < 3 {
		t.Errorf("%d SVG charts, want a throughput chart and two histograms", n)
	}

	chromium := findChromium(t)
	shot := filepath.Join(dir, "shot.png")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--window-size=1200,2000"}
	cmd := exec.CommandContext(ctx, chromium, append(args, "--screenshot="+shot, "file://"+page)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	for _, bad := range []string{"Uncaught", "CONSOLE", "ERR_FILE_NOT_FOUND", "net::ERR"} {
		if strings.Contains(string(out), bad) {
			t.Errorf("chromium reports %q:\n%s", bad, out)
		}
	}
	pf, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v\n%s", err, out)
	}
	defer pf.Close()
	img, err := png.Decode(pf)
	if err != nil {
		t.Fatal(err)
	}
	colours := map[uint32]bool{}
	nonWhite := 0
	targetColour := make([]int, len(rep.Results))
	want := [][3]uint32{{0x1f, 0x77, 0xb4}, {0xd6, 0x27, 0x28}}
	bnd := img.Bounds()
	for y := bnd.Min.Y; y < bnd.Max.Y; y++ {
		for x := bnd.Min.X; x < bnd.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			r, g, b = r>>8, g>>8, b>>8
			colours[r<<16|g<<8|b] = true
			if r < 240 || g < 240 || b < 240 {
				nonWhite++
			}
			for k := range targetColour {
				w := want[k]
				if absDiff(r, w[0]) < 8 && absDiff(g, w[1]) < 8 && absDiff(b, w[2]) < 8 {
					targetColour[k]++
				}
			}
		}
	}
	total := bnd.Dx() * bnd.Dy()
	t.Logf("screenshot %dx%d: %d colours, %d non-white pixels, chart pixels per target %v", bnd.Dx(), bnd.Dy(), len(colours), nonWhite, targetColour)
	if len(colours) < 20 || nonWhite < total/100 {
		t.Errorf("screenshot looks blank: %d colours, %d of %d pixels non-white", len(colours), nonWhite, total)
	}
	for k, n := range targetColour {
		if n < 200 {
			t.Errorf("target %d's chart colour covers %d pixels: charts not drawn", k, n)
		}
	}
}

func absDiff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}
