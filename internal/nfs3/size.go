package nfs3

import "github.com/mailnfs/mailnfs/internal/xdr"

// Encoded sizes used to budget READDIR and READDIRPLUS replies (RFC 1813
// §3.3.16: count is the size of the whole READDIR3resok including XDR
// overhead).

// PostOpAttrSize is the encoded size of post_op_attr with or without
// attributes.
func PostOpAttrSize(present bool) int {
	if present {
		return 4 + FattrSize
	}
	return 4
}

// PostOpFHSize is the encoded size of post_op_fh3 for fh (nil = absent).
func PostOpFHSize(fh []byte) int {
	if fh == nil {
		return 4
	}
	return 4 + 4 + len(fh) + xdr.Pad(len(fh))
}

// EntrySize is the encoded size of one entry3 inside dirlist3, including
// its leading TRUE "value follows" word.
func EntrySize(nameLen int) int {
	return 4 + 8 + 4 + nameLen + xdr.Pad(nameLen) + 8
}

// EntryPlusDirSize is the part of one entryplus3 that READDIRPLUS's
// dircount budgets: fileid, name and cookie (RFC 1813 §3.3.17).
func EntryPlusDirSize(nameLen int) int {
	return 8 + 4 + nameLen + xdr.Pad(nameLen) + 8
}

// EntryPlusSize is the encoded size of one entryplus3 inside dirlistplus3,
// including its leading TRUE word, attributes (if attr) and handle fh.
func EntryPlusSize(nameLen int, attr bool, fh []byte) int {
	return EntrySize(nameLen) + PostOpAttrSize(attr) + PostOpFHSize(fh)
}

// ReaddirFixedSize is the encoded size of a READDIR3resok or
// READDIRPLUS3resok without entries: status, dir_attributes, cookieverf,
// the terminating FALSE and eof.
func ReaddirFixedSize(dirAttr bool) int {
	return 4 + PostOpAttrSize(dirAttr) + VerfSize + 4 + 4
}
