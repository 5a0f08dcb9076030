package kafkaclient_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/config"
	"github.com/perkeso/jambatan/cmd/gateway/internal/kafkaclient"
)

// TestTLSAndSCRAM: the relay's writer reaches a broker that requires TLS
// with client certificates and SASL/SCRAM-SHA-512, configured as
// "gateway serve" reads it; wrong credentials are refused.
func TestTLSAndSCRAM(t *testing.T) {
	dir := t.TempDir()
	ca, _ := certs.NewCA("kafka CA")
	srv, _ := ca.IssueServer("localhost", []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")})
	cli, _ := ca.IssueClient("jambatan")
	caFile, certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "c.pem"), filepath.Join(dir, "c.key")
	if err := os.WriteFile(caFile, certs.CertPEM(ca.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = certs.WriteFiles(certFile, keyFile, cli.Cert, cli.Key)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{srv.Cert.Raw}, PrivateKey: srv.Key}},
			ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12}),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "jambatan", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tc := range []struct {
		name, password string
		ok             bool
	}{{"ok/scram-sha-512", "s3cret", true}, {"fail/wrong-password", "guess", false}} {
		t.Run(tc.name, func(t *testing.T) {
			pw := filepath.Join(dir, "pw-"+tc.password)
			if err := os.WriteFile(pw, []byte(tc.password+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			kc, err := kafkaclient.New(config.Kafka{Brokers: c.ListenAddrs(),
				TLS:  &config.KafkaTLS{CAFile: caFile, CertFile: certFile, KeyFile: keyFile},
				SASL: &config.KafkaSASL{Mechanism: "SCRAM-SHA-512", Username: "jambatan", PasswordFile: pw}})
			if err != nil {
				t.Fatal(err)
			}
			err = writeOne(kc)
			if tc.ok != (err == nil) {
				t.Fatalf("write: %v", err)
			}
		})
	}
}

// presentOnly is a cluster with the one topic "present", and a client of it.
func presentOnly(t *testing.T) (*kfake.Cluster, *kafkaclient.Client) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "present"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	kc, err := kafkaclient.New(config.Kafka{Brokers: c.ListenAddrs()})
	if err != nil {
		t.Fatal(err)
	}
	return c, kc
}

// TestMissingTopics: of the topics asked about, those the cluster lacks are
// named, and asking does not create them.
func TestMissingTopics(t *testing.T) {
	_, kc := presentOnly(t)
	for _, tc := range []struct {
		name   string
		topics []string
		want   []string
	}{
		{"ok/present", []string{"present"}, nil},
		{"fail/absent", []string{"present", "absent"}, []string{"absent"}},
		{"fail/absent-still", []string{"absent"}, []string{"absent"}}, // not created by the first ask
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := kc.MissingTopics(context.Background(), tc.topics...)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("missing %q (%v), want %q", got, err, tc.want)
			}
		})
	}
}

// TestWaitForTopics: WaitForTopics returns once a topic the cluster lacked
// is created, having said once that it was missing; it ends with its
// context while the topic is still missing.
func TestWaitForTopics(t *testing.T) {
	c, kc := presentOnly(t)
	var told [][]string
	done := make(chan error, 1)
	go func() {
		done <- kc.WaitForTopics(context.Background(), 50*time.Millisecond, func(m []string, _ error) { told = append(told, m) }, "present", "late")
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("returned before the topic existed: %v", err)
	default:
	}
	admin := &kafka.Client{Addr: kafka.TCP(c.ListenAddrs()...)}
	if _, err := admin.CreateTopics(context.Background(), &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: "late", NumPartitions: 1, ReplicationFactor: 1}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil || len(told) != 1 || !slices.Equal(told[0], []string{"late"}) {
			t.Fatalf("returned %v, having said %q", err, told)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still waiting after the topic was created")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := kc.WaitForTopics(ctx, 50*time.Millisecond, nil, "absent"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v for a topic that never came, want the context's end", err)
	}
}

// TestWeakBrokerTLSRefused: the relay's writer holds a broker to the
// gateway's TLS policy (certs.ClientConfig): a broker offering only AES-CBC
// with SHA-1 is refused in the handshake, the same broker with AES-GCM is
// written to.
func TestWeakBrokerTLSRefused(t *testing.T) {
	dir := t.TempDir()
	ca, _ := certs.NewCA("kafka CA")
	srv, _ := ca.IssueServer("localhost", []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")})
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, certs.CertPEM(ca.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		suite uint16 // the broker's only TLS 1.2 suite
		ok    bool
	}{
		{"ok/aes-gcm", tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, true},
		{"fail/aes-cbc-sha1", tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"),
				kfake.TLS(&tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{srv.Cert.Raw}, PrivateKey: srv.Key}},
					MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tc.suite}}))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			kc, err := kafkaclient.New(config.Kafka{Brokers: c.ListenAddrs(), TLS: &config.KafkaTLS{CAFile: caFile}})
			if err != nil {
				t.Fatal(err)
			}
			err = writeOne(kc)
			if tc.ok != (err == nil) {
				t.Fatalf("write: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// writeOne writes one message to topic t, trying once.
func writeOne(kc *kafkaclient.Client) error {
	w := kc.Writer(10)
	w.MaxAttempts = 1
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return w.WriteMessages(ctx, kafka.Message{Topic: "t", Key: []byte("k"), Value: []byte("v")})
}

// TestBatchBytes: the relay's record batches stay within the cluster's
// message size (kafka.max_message_bytes), Kafka's default when not set.
func TestBatchBytes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cluster int
		want    int64
	}{
		{"ok/default", 0, kafkaclient.MaxBatchBytes},
		{"ok/configured", 512 << 10, 512 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kc, err := kafkaclient.New(config.Kafka{Brokers: []string{"127.0.0.1:9"}, MaxMessageBytes: tc.cluster})
			if err != nil {
				t.Fatal(err)
			}
			if got := kc.Writer(10).BatchBytes; got != tc.want {
				t.Fatalf("BatchBytes %d, want %d", got, tc.want)
			}
		})
	}
}

// TestCompression: the writer's batches carry the codec kafka.compression
// names, a consumer of another client (franz-go's) reads them back as
// written, and a name no codec has is refused.
func TestCompression(t *testing.T) {
	for _, tc := range []struct {
		name, compression string
		codec             uint8 // the batch's attribute: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd
		err               string
	}{
		{"ok/default", "", 0, ""},
		{"ok/none", "none", 0, ""},
		{"ok/gzip", "gzip", 1, ""},
		{"ok/snappy", "snappy", 2, ""},
		{"ok/lz4", "lz4", 3, ""},
		{"ok/zstd", "zstd", 4, ""},
		{"fail/brotli", "brotli", 0, `kafka: no compression "brotli"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			kc, err := kafkaclient.New(config.Kafka{Brokers: c.ListenAddrs(), Compression: tc.compression})
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			w := kc.Writer(10)
			defer w.Close()
			event := []byte(strings.Repeat(`{"record":{"schema":"perkeso-injury-notification/v1"}}`, 20))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := w.WriteMessages(ctx, kafka.Message{Topic: "events", Key: []byte("a"), Value: event}, kafka.Message{Topic: "events", Key: []byte("a"), Value: event}); err != nil {
				t.Fatal(err)
			}
			cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("events"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			var got []*kgo.Record
			for len(got) < 2 && ctx.Err() == nil {
				fs := cl.PollFetches(ctx)
				if err := fs.Err(); err != nil && ctx.Err() == nil {
					t.Fatal(err)
				}
				got = append(got, fs.Records()...)
			}
			if len(got) != 2 {
				t.Fatalf("read %d records, want 2", len(got))
			}
			for _, r := range got {
				if r.Attrs.CompressionType() != tc.codec || !bytes.Equal(r.Value, event) {
					t.Fatalf("codec %d, want %d; value of %d bytes, want %d", r.Attrs.CompressionType(), tc.codec, len(r.Value), len(event))
				}
			}
		})
	}
}

// TestGroupReaderReadsAddedPartitions: partitions added to a topic while a
// group reads it are read, by each of the group's topics, without a
// restart (a group that does not watch them reads them only once it is
// restarted: the records written there waited).
func TestGroupReaderReadsAddedPartitions(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "requests", "notices"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	kc, err := kafkaclient.New(config.Kafka{Brokers: c.ListenAddrs()})
	if err != nil {
		t.Fatal(err)
	}
	write := func(topic string, partition int, value string) {
		t.Helper()
		conn, err := kafka.DialLeader(context.Background(), "tcp", c.ListenAddrs()[0], topic, partition)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.WriteMessages(kafka.Message{Value: []byte(value)}); err != nil {
			t.Fatal(err)
		}
	}
	r := kc.GroupReader("g", []string{"requests", "notices"}, 100*time.Millisecond)
	defer r.Close()
	read := func(want ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 4*kafkaclient.PartitionWatchInterval)
		defer cancel()
		var got []string
		for len(got) < len(want) {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				t.Fatalf("read %q of %q: %v", got, want, err)
			}
			got = append(got, fmt.Sprintf("%s/%d/%s", m.Topic, m.Partition, m.Value))
			if err := r.CommitMessages(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("read %q, want %q", got, want)
		}
	}
	write("requests", 0, "a")
	write("notices", 0, "b")
	read("notices/0/b", "requests/0/a")
	admin := &kafka.Client{Addr: kafka.TCP(c.ListenAddrs()...)}
	res, err := admin.CreatePartitions(context.Background(), &kafka.CreatePartitionsRequest{Topics: []kafka.TopicPartitionsConfig{
		{Name: "requests", Count: 3}, {Name: "notices", Count: 2}}})
	if err != nil || res.Errors["requests"] != nil || res.Errors["notices"] != nil {
		t.Fatalf("create partitions: %v %v", err, res)
	}
	write("requests", 2, "c")
	write("notices", 1, "d")
	read("notices/1/d", "requests/2/c")
}

// TestLastOfEach: of the messages a consumer owes, one a topic's partition
// stays, the one with the highest offset, whatever order they came in.
func TestLastOfEach(t *testing.T) {
	m := func(topic string, partition int, offset int64) kafka.Message {
		return kafka.Message{Topic: topic, Partition: partition, Offset: offset}
	}
	key := func(ms []kafka.Message) []string {
		var ks []string
		for _, x := range ms {
			ks = append(ks, fmt.Sprintf("%s/%d@%d", x.Topic, x.Partition, x.Offset))
		}
		slices.Sort(ks)
		return ks
	}
	for _, tc := range []struct {
		name string
		in   []kafka.Message
		want []string
	}{
		{"ok/none", nil, nil},
		{"ok/one-partition", []kafka.Message{m("a", 0, 3), m("a", 0, 4), m("a", 0, 5)}, []string{"a/0@5"}},
		{"ok/out-of-order", []kafka.Message{m("a", 0, 9), m("a", 0, 4), m("a", 0, 7)}, []string{"a/0@9"}},
		{"ok/partitions-and-topics-apart", []kafka.Message{m("a", 0, 2), m("a", 1, 8), m("b", 0, 1), m("a", 1, 6), m("a", 0, 3)},
			[]string{"a/0@3", "a/1@8", "b/0@1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := key(kafkaclient.LastOfEach(tc.in)); !slices.Equal(got, tc.want) {
				t.Fatalf("LastOfEach = %v, want %v", got, tc.want)
			}
		})
	}
}
