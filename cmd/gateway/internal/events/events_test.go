package events_test

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

func hdr(json string) string { return base64.RawURLEncoding.EncodeToString([]byte(json)) }

// TestRender: a verified event rendered from its log entry is byte for byte
// the event built directly from the same parts (what the intake published
// before events were held by reference).
func TestRender(t *testing.T) {
	b := &events.Builder{Topics: events.DefaultTopics, Source: "test"}
	record, receipt := []byte(`{"recordId":"r1"}`), "eyJ.receipt.sig"
	doc := []byte(`{"noticeId":"n1"}`)
	compact := hdr(`{"alg":"ES256"}`) + "." + base64.RawURLEncoding.EncodeToString(doc) + ".c2ln"
	detached := hdr(`{"alg":"ES256","kid":"k"}`) + "..c2ln"
	unencoded := hdr(`{"alg":"ES256","b64":false,"crit":["b64"]}`) + "..c2ln"
	tests := []struct {
		name    string
		render  string
		logged  *store.Entry
		want    events.Verified // built directly; zero for a failure
		wantErr bool
	}{
		{name: "ok/compact", render: events.RenderVerifiedJWS, logged: &store.Entry{Body: []byte(compact)},
			want: events.Verified{JWS: ptr(events.SignedFrom(compact, nil, true))}},
		{name: "ok/detached", render: events.RenderVerifiedJWS, logged: &store.Entry{Body: doc, Signature: detached},
			want: events.Verified{JWS: ptr(events.SignedFrom(detached, doc, true))}},
		{name: "ok/detached-unencoded", render: events.RenderVerifiedJWS, logged: &store.Entry{Body: doc, Signature: unencoded},
			want: events.Verified{JWS: ptr(events.SignedFrom(unencoded, doc, false))}},
		{name: "ok/soap", render: events.RenderVerifiedSOAP, logged: &store.Entry{Body: []byte("<Envelope/>")},
			want: events.Verified{SOAP: "<Envelope/>"}},
		{name: "fail/unknown-renderer", render: "verified/fax", logged: &store.Entry{Body: doc}, wantErr: true},
		{name: "fail/no-entry", render: events.RenderVerifiedJWS, wantErr: true},
		{name: "fail/header-not-base64", render: events.RenderVerifiedJWS, logged: &store.Entry{Body: doc, Signature: "!!..c2ln"}, wantErr: true},
		{name: "fail/header-not-json", render: events.RenderVerifiedJWS, logged: &store.Entry{Body: doc, Signature: hdr("alg") + "..c2ln"}, wantErr: true},
	}
	at := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.logged != nil {
				tt.logged.Canonical, tt.logged.Receipt = record, receipt
			}
			m := b.VerifiedRef("r1", "p1", at, tt.render)
			m.Logged = tt.logged
			err := events.Render(&m)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("rendered %s, want an error", m.Value)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Record, tt.want.Receipt = record, receipt
			direct, err := b.VerifiedMessage("r1", "p1", at, tt.want)
			if err != nil {
				t.Fatal(err)
			}
			if string(m.Value) != string(direct.Value) {
				t.Fatalf("rendered\n%s\nwant\n%s", m.Value, direct.Value)
			}
			if string(m.Key) != string(direct.Key) || m.Topic != direct.Topic || len(m.Headers) != len(direct.Headers) {
				t.Fatalf("rendered message %+v, want %+v", m, direct)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
