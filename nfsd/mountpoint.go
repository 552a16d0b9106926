package nfsd

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// This file holds the check behind Export.Mountpoint (Linux mp and
// mountpoint=DIR). isMountpoint is per system: mountpoint_linux.go,
// mountpoint_freebsd.go, mountpoint_other.go.

// CheckMountpoints returns a warning for each export of t whose Mountpoint
// is not a mount point now, at the position of its mp option: mailnfsd
// does not serve such an export until a start or reload finds it mounted.
// -check-config prints them.
func CheckMountpoints(t *ExportTable) []Warning {
	var out []Warning
	for _, e := range t.Exports {
		if msg := mountpointProblem(e); msg != "" {
			out = append(out, Warning{Pos: e.MountpointPos, Msg: msg})
		}
	}
	return out
}

// mountpointProblem says why e may not be served now because of its
// Mountpoint, or "" if it may (no mountpoint option, or it is mounted).
func mountpointProblem(e *Export) string {
	if e.Mountpoint == "" {
		return ""
	}
	opt := "mp"
	if e.Mountpoint != e.Path {
		opt = "mountpoint=" + e.Mountpoint
	}
	ok, err := isMountpoint(e.Mountpoint)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Sprintf("export %s is not served: its mount point %s (%s): %v", e.Path, e.Mountpoint, opt, err)
	}
	if !ok {
		return fmt.Sprintf("export %s is not served: %s is not a mount point (%s); mount its file system, then reload (SIGHUP)", e.Path, e.Mountpoint, opt)
	}
	return ""
}

// fileID identifies a directory: its device and inode numbers.
type fileID struct{ dev, ino uint64 }

// dirID returns the fileID of path (following symbolic links).
func dirID(path string) (fileID, error) {
	st, err := os.Stat(path)
	if err != nil {
		return fileID{}, err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, fmt.Errorf("stat %s: no device and inode numbers", path)
	}
	return fileID{dev: uint64(sys.Dev), ino: uint64(sys.Ino)}, nil
}
