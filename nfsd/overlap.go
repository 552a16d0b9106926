package nfsd

import (
	"fmt"
	"path/filepath"
	"strings"
)

// CheckCompressOverlap returns the error Reload (and so the start) fails
// with when a compressing export of t overlaps another (compressOverlap);
// -check-config reports it.
func CheckCompressOverlap(t *ExportTable) error { return compressOverlap(t.Exports) }

// compressOverlap returns an error if a compressing export and another
// export of es (those to be served) hold the same files: one's directory
// is the other's, or lies below it on the same file system. Each export
// gets a store of its own, and a store's compression worker holds a file
// against that store's calls only: a WRITE through the other export
// during a rewrite is lost (the rewrite puts back the content it read), a
// READ may meet a file half rewritten, and an export above a compressing
// one serves its messages' compressed bytes.
func compressOverlap(es []*Export) error {
	type dir struct {
		e    *Export
		path string // symlinks resolved, if they can be
		id   fileID // zero if not known
	}
	var ds []dir
	for _, e := range es {
		if mountpointProblem(e) != "" {
			continue // not served
		}
		d := dir{e: e, path: e.Path}
		if p, err := filepath.EvalSymlinks(e.Path); err == nil {
			d.path = p
		}
		d.id, _ = dirID(e.Path)
		ds = append(ds, d)
	}
	below := func(p, q string) bool { // q is below p
		return p == "/" || strings.HasPrefix(q, p+"/")
	}
	for _, a := range ds {
		if a.e.Compress == "" {
			continue
		}
		for _, b := range ds {
			if a.e == b.e {
				continue
			}
			known := a.id != (fileID{}) && b.id != (fileID{})
			same := known && a.id == b.id
			nested := (below(a.path, b.path) || below(b.path, a.path)) && (!known || a.id.dev == b.id.dev)
			if same || nested {
				return fmt.Errorf("%s: export %s (compress=%s) and %s (%s) hold the same files: each would get a store of its own, whose compression worker does not hold a file against the other's calls (writes through one during a rewrite by the other are lost); export only one of them, or directories that do not overlap",
					a.e.Pos, a.e.Path, a.e.Compress, b.e.Path, b.e.Pos)
			}
		}
	}
	return nil
}
