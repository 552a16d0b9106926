//go:build !linux && !freebsd

package nfsd

// stateDirFS is "": the file system's type is not looked at here.
func stateDirFS(string) string { return "" }
