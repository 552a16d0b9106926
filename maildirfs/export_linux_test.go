package maildirfs

// HaveFchmodat2 reports what the store found out about fchmodat2 (probed
// once per process).
func HaveFchmodat2() bool { return haveFchmodat2() }
