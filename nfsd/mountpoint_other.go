//go:build !linux && !freebsd

package nfsd

// isMountpoint reports whether path is the root of a mounted file system,
// by the st_dev test (mountpointByStat).
func isMountpoint(path string) (bool, error) { return mountpointByStat(path) }
