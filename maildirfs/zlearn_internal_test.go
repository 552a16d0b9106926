package maildirfs

import (
	"strings"
	"testing"
	"time"
)

// TestZsampleOf: a sample keeps the header (folded DKIM lines included) and
// the text, and stops before the first base64 body line.
func TestZsampleOf(t *testing.T) {
	head := "DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s1;\r\n" +
		"\tb=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZSBidXQgbG9uZyBlbm91Z2ggdG8gbG9vaw==\r\n" +
		"Subject: hello\r\nContent-Type: multipart/mixed; boundary=xyz\r\n\r\n" +
		"--xyz\r\nContent-Type: text/plain\r\n\r\nSee the attached file.\r\n\r\n" +
		"--xyz\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	body := strings.Repeat("JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZURl\r\n", 50)
	if got := string(zsampleOf([]byte(head + body))); got != head {
		t.Errorf("sample of a message with an attachment:\n%q\nwant\n%q", got, head)
	}
	long := strings.Repeat("a line of ordinary text, not base64 at all.\n", 400)
	if got := zsampleOf([]byte(long)); len(got) != zSampleLen {
		t.Errorf("sample of long text: %d bytes, want %d", len(got), zSampleLen)
	}
	if got := zsampleOf(nil); len(got) != 0 {
		t.Errorf("sample of nothing: %q", got)
	}
}

// TestZdictName: dictionary file names carry the training time and the ID,
// sort by age, and anything else is not a dictionary name.
func TestZdictName(t *testing.T) {
	t1, t2 := time.Unix(1795929659, 5), time.Unix(1795929659, 6)
	a, b := zdictName(t1, 0x6cb4ecbc), zdictName(t2, 0x00008000)
	if a != "1795929659000000005-6cb4ecbc.zdict" || !(a < b) {
		t.Errorf("names %q, %q: the later must sort last", a, b)
	}
	if tt, id, ok := zparseDictName(a); !ok || !tt.Equal(t1) || id != 0x6cb4ecbc {
		t.Errorf("parse %q: %v %x %v", a, tt, id, ok)
	}
	for _, bad := range []string{"x.zdict", "1-2.zdict", a + ".tmp", "-00008000.zdict", "1795929659000000005-6cb4ecbg.zdict",
		"-1-00008000.zdict", "001795929659-00008000.zdict", "-795929659000000005-00008000.zdict"} {
		if _, _, ok := zparseDictName(bad); ok {
			t.Errorf("%q parsed as a dictionary name", bad)
		}
	}
	for range 1000 {
		if id := znewDictID(); id < 32768 || id >= 1<<31 || id == zdictID || id == zdict2ID {
			t.Fatalf("new ID %08x out of the private range", id)
		}
	}
}

// FuzzZDict: a dictionary file, whatever its bytes (a damaged disk, a
// planted file), is accepted or refused with an error, never a panic, and
// a decoder that takes it still decodes frames of the built-in dictionary.
func FuzzZDict(f *testing.F) {
	f.Add(zdict2, "1795929659000000000-4d4e4602.zdict")
	f.Add(append([]byte{0x37, 0xa4, 0x30, 0xec, 0, 0x80, 0, 0}, zdict2[8:]...), "1795929659000000000-00008000.zdict")
	f.Add(zdict2[:100], "1795929659000000000-00008000.zdict")
	enc, _ := zcodecs()
	plain := []byte("Subject: hello\r\n\r\nhello, hello, hello\r\n")
	frame := enc.EncodeAll(plain, nil)
	f.Fuzz(func(t *testing.T, d []byte, name string) {
		_, id, ok := zparseDictName(name)
		if !ok || zcheckDict(d, id) != nil {
			return
		}
		dec, err := newZDecoder([][]byte{zdict2, d})
		if err != nil {
			return
		}
		if out, err := dec.DecodeAll(frame, nil); err != nil || string(out) != string(plain) {
			t.Fatalf("a frame of the built-in dictionary decodes to %q, %v", out, err)
		}
	})
}
