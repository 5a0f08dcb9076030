package server

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestReadBody: a declared body is read whole into one allocation of its
// length; an undeclared one, or one declared over the limit, is read until
// the limit refuses it; a body shorter than declared is an error.
func TestReadBody(t *testing.T) {
	const limit = 16
	for _, tc := range []struct {
		name     string
		body     string
		declared int64
		want     string
		wantErr  func(error) bool
	}{
		{name: "ok/declared", body: "0123456789", declared: 10, want: "0123456789"},
		{name: "ok/declared-at-the-limit", body: strings.Repeat("x", limit), declared: limit, want: strings.Repeat("x", limit)},
		{name: "ok/undeclared", body: "chunked", declared: -1, want: "chunked"},
		{name: "fail/shorter-than-declared", body: "0123", declared: 10, wantErr: func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{name: "fail/declared-over-the-limit", body: strings.Repeat("x", 40), declared: 40, wantErr: isMaxBytes},
		{name: "fail/declared-far-over-the-limit", body: strings.Repeat("x", 40), declared: 1 << 50, wantErr: isMaxBytes}, // never allocated
		{name: "fail/undeclared-over-the-limit", body: strings.Repeat("x", 40), declared: -1, wantErr: isMaxBytes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(strings.NewReader(tc.body)), limit)
			got, err := readBody(r, tc.declared, limit)
			if tc.wantErr != nil {
				if !tc.wantErr(err) {
					t.Fatalf("error %v", err)
				}
				return
			}
			if err != nil || string(got) != tc.want || cap(got) != len(tc.want) && tc.declared > 0 {
				t.Fatalf("%q (cap %d), %v; want %q", got, cap(got), err, tc.want)
			}
		})
	}
	body := strings.NewReader("")
	if n := testing.AllocsPerRun(20, func() {
		body.Reset("0123456789")
		readBody(body, 10, limit)
	}); n != 1 {
		t.Errorf("%v allocations for a declared body, want 1", n)
	}
}

func isMaxBytes(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}
