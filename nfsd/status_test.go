package nfsd

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/maildirfs"
)

func TestStatusFromError(t *testing.T) {
	wrapped := func(err error) error { return fmt.Errorf("op x: %w", err) }
	tests := []struct {
		name string
		err  error
		want nfs3.Status
	}{
		{"nil", nil, nfs3.StatusOK},
		{"BadHandle", maildirfs.ErrBadHandle, nfs3.StatusBadHandle},
		{"StaleWrapped", wrapped(maildirfs.ErrStale), nfs3.StatusStale},
		{"NotSync", maildirfs.ErrNotSync, nfs3.StatusNotSync},
		{"BadCookie", maildirfs.ErrBadCookie, nfs3.StatusBadCookie},
		{"Corrupt", wrapped(maildirfs.ErrCorrupt), nfs3.StatusIO},
		{"Access", ErrAccess, nfs3.StatusAcces},
		{"AccessWrapped", wrapped(ErrAccess), nfs3.StatusAcces},
		{"StatusItself", wrapped(nfs3.StatusJukebox), nfs3.StatusJukebox},
		{"EPERM", syscall.EPERM, nfs3.StatusPerm},
		{"ENOENT", syscall.ENOENT, nfs3.StatusNoEnt},
		{"PathErrorENOENT", &fs.PathError{Op: "open", Path: "x", Err: syscall.ENOENT}, nfs3.StatusNoEnt},
		{"EIO", syscall.EIO, nfs3.StatusIO},
		{"ENXIO", syscall.ENXIO, nfs3.StatusNXIO},
		{"EACCES", wrapped(syscall.EACCES), nfs3.StatusAcces},
		{"EEXIST", syscall.EEXIST, nfs3.StatusExist},
		{"EXDEV", syscall.EXDEV, nfs3.StatusXDev},
		{"ENODEV", syscall.ENODEV, nfs3.StatusNoDev},
		{"ENOTDIR", syscall.ENOTDIR, nfs3.StatusNotDir},
		{"EISDIR", syscall.EISDIR, nfs3.StatusIsDir},
		{"EINVAL", syscall.EINVAL, nfs3.StatusInval},
		{"EFBIG", syscall.EFBIG, nfs3.StatusFBig},
		{"ENOSPC", syscall.ENOSPC, nfs3.StatusNoSpc},
		{"EROFS", syscall.EROFS, nfs3.StatusROFS},
		{"EMLINK", syscall.EMLINK, nfs3.StatusMLink},
		{"ENAMETOOLONG", syscall.ENAMETOOLONG, nfs3.StatusNameTooLong},
		{"ENOTEMPTY", syscall.ENOTEMPTY, nfs3.StatusNotEmpty},
		{"EDQUOT", syscall.EDQUOT, nfs3.StatusDQuot},
		{"ESTALE", syscall.ESTALE, nfs3.StatusStale},
		{"ELOOP", syscall.ELOOP, nfs3.StatusInval},
		{"EOPNOTSUPP", syscall.EOPNOTSUPP, nfs3.StatusNotSupp},
		{"ENOTSUP", syscall.ENOTSUP, nfs3.StatusNotSupp},
		{"EAGAIN", syscall.EAGAIN, nfs3.StatusJukebox},
		{"EBUSY", syscall.EBUSY, nfs3.StatusAcces},
		{"EBADF", syscall.EBADF, nfs3.StatusServerFault},
		{"Plain", errors.New("something odd"), nfs3.StatusServerFault},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := statusFromError(tt.err); got != tt.want {
				t.Errorf("statusFromError(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
