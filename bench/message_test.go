package bench

import (
	"bytes"
	"slices"
	"testing"
)

func TestMessageBody(t *testing.T) {
	for _, size := range []int{0, 100, 4096, 4097, 65536} {
		b := MessageBody("r1-c8-w3-17", size)
		if size >= 200 && len(b) != size {
			t.Errorf("size %d: got %d bytes", size, len(b))
		}
		id, err := MessageID(b)
		if err != nil || id != "r1-c8-w3-17" {
			t.Errorf("size %d: MessageID = %q, %v", size, id, err)
		}
		if !bytes.Equal(b, MessageBody("r1-c8-w3-17", size)) {
			t.Errorf("size %d: body not deterministic", size)
		}
	}
	if bytes.Equal(MessageBody("a", 4096), MessageBody("b", 4096)) {
		t.Error("different IDs gave the same body")
	}
}

func FuzzMessageID(f *testing.F) {
	f.Add(MessageBody("x-1", 300))
	f.Add([]byte("X-Bench-ID: \n\n"))
	f.Add([]byte("\nX-Bench-ID: a"))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := MessageID(b)
		if err == nil && (id == "" || bytes.ContainsAny([]byte(id), "\n")) {
			t.Fatalf("MessageID(%q) = %q", b, id)
		}
	})
}

func TestMixSize(t *testing.T) {
	const n = 4000
	sizes := make([]int, n)
	for i := range sizes {
		sizes[i] = MixSize("mix-" + itoa(i))
		if sizes[i] < 300 || sizes[i] > 1<<20 {
			t.Fatalf("MixSize out of range: %d", sizes[i])
		}
	}
	if a, b := MixSize("same"), MixSize("same"); a != b {
		t.Fatal("MixSize not deterministic")
	}
	slices.Sort(sizes)
	if med := sizes[n/2]; med < 1500 || med > 3500 {
		t.Errorf("median %d, want about 2.3 KiB", med)
	}
	if p99 := sizes[n*99/100]; p99 < 64<<10 {
		t.Errorf("p99 %d, want a tail beyond 64 KiB", p99)
	}
}
