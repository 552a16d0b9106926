package nfsd

import (
	"reflect"
	"testing"
)

// exEqual fails the test if got and want differ (reflect.DeepEqual); the
// ex prefix keeps these helpers apart from other files' test helpers.
func exEqual(t testing.TB, want, got any, msg ...any) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		if ws, ok := want.(string); ok {
			t.Fatalf("%v\nwant:\n%s\ngot:\n%s", msg, ws, got)
		}
		t.Fatalf("%v\nwant: %#v\ngot:  %#v", msg, want, got)
	}
}

// exNoErr fails the test on a non-nil error.
func exNoErr(t testing.TB, err error, msg ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v %v", err, msg)
	}
}

// exTrue fails the test if cond is false.
func exTrue(t testing.TB, cond bool, msg ...any) {
	t.Helper()
	if !cond {
		t.Fatal(msg...)
	}
}
