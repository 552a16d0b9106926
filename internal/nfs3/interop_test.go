package nfs3

// Cross-checks against independent implementations: go-nfs (server) and
// go-nfs-client, which use reflection-based XDR on their own struct
// layouts. Agreement here means our hand-written codecs match other
// people's reading of RFC 1813, not just our own.

import (
	"bytes"
	"testing"
	"time"

	gonfs "github.com/willscott/go-nfs"
	nfsc "github.com/willscott/go-nfs-client/nfs"
	nfscxdr "github.com/willscott/go-nfs-client/nfs/xdr"

	"github.com/mailnfs/mailnfs/internal/xdr"
)

func TestConstantsMatchGoNFS(t *testing.T) {
	statuses := []struct {
		ours   Status
		theirs gonfs.NFSStatus
	}{
		{StatusOK, gonfs.NFSStatusOk}, {StatusPerm, gonfs.NFSStatusPerm}, {StatusNoEnt, gonfs.NFSStatusNoEnt},
		{StatusIO, gonfs.NFSStatusIO}, {StatusNXIO, gonfs.NFSStatusNXIO}, {StatusAcces, gonfs.NFSStatusAccess},
		{StatusExist, gonfs.NFSStatusExist}, {StatusXDev, gonfs.NFSStatusXDev}, {StatusNoDev, gonfs.NFSStatusNoDev},
		{StatusNotDir, gonfs.NFSStatusNotDir}, {StatusIsDir, gonfs.NFSStatusIsDir}, {StatusInval, gonfs.NFSStatusInval},
		{StatusFBig, gonfs.NFSStatusFBig}, {StatusNoSpc, gonfs.NFSStatusNoSPC}, {StatusROFS, gonfs.NFSStatusROFS},
		{StatusMLink, gonfs.NFSStatusMlink}, {StatusNameTooLong, gonfs.NFSStatusNameTooLong},
		{StatusNotEmpty, gonfs.NFSStatusNotEmpty}, {StatusDQuot, gonfs.NFSStatusDQuot}, {StatusStale, gonfs.NFSStatusStale},
		{StatusRemote, gonfs.NFSStatusRemote}, {StatusBadHandle, gonfs.NFSStatusBadHandle},
		{StatusNotSync, gonfs.NFSStatusNotSync}, {StatusBadCookie, gonfs.NFSStatusBadCookie},
		{StatusNotSupp, gonfs.NFSStatusNotSupp}, {StatusTooSmall, gonfs.NFSStatusTooSmall},
		{StatusServerFault, gonfs.NFSStatusServerFault}, {StatusBadType, gonfs.NFSStatusBadType},
		{StatusJukebox, gonfs.NFSStatusJukebox},
	}
	for _, s := range statuses {
		if uint32(s.ours) != uint32(s.theirs) {
			t.Errorf("%v = %d, go-nfs says %d", s.ours, uint32(s.ours), uint32(s.theirs))
		}
	}
	if uint32(ProcReaddirplus) != uint32(gonfs.NFSProcedureReadDirPlus) || uint32(ProcCommit) != uint32(gonfs.NFSProcedureCommit) {
		t.Error("procedure numbers differ from go-nfs")
	}
	if uint32(TypeFifo) != uint32(gonfs.FileTypeFIFO) || uint32(TypeBlk) != uint32(gonfs.FileTypeBlock) {
		t.Error("file types differ from go-nfs")
	}
	if FSFLink|FSFSymlink|FSFHomogeneous|FSFCanSetTime != uint32(gonfs.FSInfoPropertyLink|gonfs.FSInfoPropertySymlink|gonfs.FSInfoPropertyHomogeneous|gonfs.FSInfoPropertyCanSetTime) {
		t.Error("FSINFO properties differ from go-nfs")
	}
	if uint32(MountAcces) != uint32(gonfs.MountStatusErrAcces) || uint32(MountServerFault) != uint32(gonfs.MountStatusErrServerFault) {
		t.Error("mount status values differ from go-nfs")
	}
}

// TestFattrMatchesGoNFSClient decodes our post_op_attr with go-nfs-client.
func TestFattrMatchesGoNFSClient(t *testing.T) {
	e := xdr.NewEncoder(nil)
	EncodePostOpAttr(e, &attr1)
	var theirs nfsc.PostOpAttr
	if err := nfscxdr.Read(bytes.NewReader(e.Bytes()), &theirs); err != nil {
		t.Fatal(err)
	}
	a := theirs.Attr
	got := Fattr{Type: FileType(a.Type), Mode: a.FileMode, Nlink: a.Nlink, UID: a.UID, GID: a.GID,
		Size: a.Filesize, Used: a.Used, Rdev: SpecData{a.SpecData[0], a.SpecData[1]}, FSID: a.FSID, FileID: a.Fileid,
		Atime: Time(a.Atime), Mtime: Time(a.Mtime), Ctime: Time(a.Ctime)}
	if !theirs.IsSet || got != attr1 {
		t.Errorf("go-nfs-client read %+v", theirs)
	}
}

// TestWccMatchesGoNFS compares our wcc_data with go-nfs's WriteWcc.
func TestWccMatchesGoNFS(t *testing.T) {
	var buf bytes.Buffer
	ts := func(t Time) gonfs.FileTime { return gonfs.FileTime{Seconds: t.Seconds, Nseconds: t.Nseconds} }
	pre := &gonfs.FileCacheAttribute{Filesize: wcc1.Before.Size, Mtime: ts(wcc1.Before.Mtime), Ctime: ts(wcc1.Before.Ctime)}
	post := &gonfs.FileAttribute{Type: gonfs.FileType(attr1.Type), FileMode: attr1.Mode, Nlink: attr1.Nlink, UID: attr1.UID,
		GID: attr1.GID, Filesize: attr1.Size, Used: attr1.Used, SpecData: [2]uint32{attr1.Rdev.Major, attr1.Rdev.Minor},
		FSID: attr1.FSID, Fileid: attr1.FileID, Atime: ts(attr1.Atime), Mtime: ts(attr1.Mtime), Ctime: ts(attr1.Ctime)}
	if err := gonfs.WriteWcc(&buf, pre, post); err != nil {
		t.Fatal(err)
	}
	if ours := encode[WccData](&wcc1); !bytes.Equal(ours, buf.Bytes()) {
		t.Errorf("wcc_data:\n ours   %x\n go-nfs %x", ours, buf.Bytes())
	}
}

// TestSattrMatchesGoNFS reads our sattr3 with go-nfs's decoder and ours
// with go-nfs-client's encoding.
func TestSattrMatchesGoNFS(t *testing.T) {
	got, err := gonfs.ReadSetFileAttributes(bytes.NewReader(encode[SetAttr](&sa1)))
	if err != nil {
		t.Fatal(err)
	}
	if got.SetMode == nil || *got.SetMode != 0o600 || got.SetUID == nil || *got.SetUID != 0 || got.SetGID == nil || *got.SetGID != 12 ||
		got.SetSize == nil || *got.SetSize != 0 || got.SetAtime == nil || got.SetMtime == nil || !got.SetMtime.Equal(time.Unix(5, 6)) {
		t.Errorf("go-nfs read %+v", got)
	}

	theirs := nfsc.Sattr3{
		Mode:  nfsc.SetMode{SetIt: true, Mode: 0o640},
		GID:   nfsc.SetUID{SetIt: true, UID: 7},
		Size:  nfsc.SetSize{SetIt: true, Size: 99},
		Mtime: nfsc.SetTime{SetIt: nfsc.SetToClientTime, Time: nfsc.NFS3Time{Seconds: 11, Nseconds: 12}},
	}
	var buf bytes.Buffer
	if err := nfscxdr.Write(&buf, &theirs); err != nil {
		t.Fatal(err)
	}
	var ours SetAttr
	d := xdr.NewDecoder(buf.Bytes())
	ours.Decode(d)
	if err := d.Done(); err != nil {
		t.Fatal(err)
	}
	want := SetAttr{Mode: u32(0o640), GID: u32(7), Size: u64(99), Mtime: SetToClientTime, MtimeVal: Time{11, 12}}
	if ours.Mode == nil || *ours.Mode != *want.Mode || ours.UID != nil || *ours.GID != 7 || *ours.Size != 99 ||
		ours.Atime != DontChange || ours.Mtime != SetToClientTime || ours.MtimeVal != want.MtimeVal {
		t.Errorf("decoded go-nfs-client sattr3 as %+v", ours)
	}
}

// TestEntryPlusAndFSInfoMatchGoNFSClient decodes our entryplus3 and
// FSINFO3resok bodies with go-nfs-client's structs.
func TestEntryPlusAndFSInfoMatchGoNFSClient(t *testing.T) {
	en := EntryPlus{FileID: 77, Name: "abcde", Cookie: 99, Attr: &attr1, Handle: fh1}
	e := xdr.NewEncoder(nil)
	en.Encode(e)
	var theirs nfsc.EntryPlus
	r := bytes.NewReader(e.Bytes()[4:]) // without the "value follows" word
	if err := nfscxdr.Read(r, &theirs); err != nil {
		t.Fatal(err)
	}
	if theirs.FileId != 77 || theirs.FileName != "abcde" || theirs.Cookie != 99 || !theirs.Attr.IsSet ||
		theirs.Attr.Attr.Fileid != attr1.FileID || !theirs.Handle.IsSet || !bytes.Equal(theirs.Handle.FH, fh1) || r.Len() != 0 {
		t.Errorf("go-nfs-client read %+v (%d bytes left)", theirs, r.Len())
	}

	fi := FsinfoRes{Status: StatusOK, Attr: &attr2, Rtmax: 1, Rtpref: 2, Rtmult: 3, Wtmax: 4, Wtpref: 5, Wtmult: 6, Dtpref: 7,
		MaxFileSize: 8, TimeDelta: Time{9, 10}, Properties: 0x1b}
	b := encode[FsinfoRes](&fi)
	var tfi nfsc.FSInfo
	r = bytes.NewReader(b[4:]) // after the status
	if err := nfscxdr.Read(r, &tfi); err != nil {
		t.Fatal(err)
	}
	if tfi.RTMax != 1 || tfi.RTPref != 2 || tfi.RTMult != 3 || tfi.WTMax != 4 || tfi.WTPref != 5 || tfi.WTMult != 6 ||
		tfi.DTPref != 7 || tfi.Size != 8 || tfi.TimeDelta != (nfsc.NFS3Time{Seconds: 9, Nseconds: 10}) || tfi.Properties != 0x1b || r.Len() != 0 {
		t.Errorf("go-nfs-client read FSINFO %+v", tfi)
	}
}
