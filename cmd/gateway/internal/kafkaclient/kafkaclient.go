// Package kafkaclient builds kafka-go writers and readers from the gateway's
// Kafka configuration: brokers, TLS with an optional client certificate, and
// SASL/SCRAM.
package kafkaclient

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/config"
)

// Client holds connection settings.
type Client struct {
	Brokers []string
	TLS     *tls.Config
	SASL    sasl.Mechanism
	// MaxBatchBytes bounds a record batch the relay produces to one
	// partition (kafka.max_message_bytes; default MaxBatchBytes).
	MaxBatchBytes int
	// Compression is the codec of the batches Writer produces
	// (kafka.compression; none when zero).
	Compression kafka.Compression
}

// codecs are kafka.compression's names for kafka-go's codecs.
var codecs = map[string]kafka.Compression{"": 0, "none": 0, "gzip": kafka.Gzip, "snappy": kafka.Snappy, "lz4": kafka.Lz4, "zstd": kafka.Zstd}

// New reads certificates and the SASL password named by the configuration.
func New(k config.Kafka) (*Client, error) {
	if len(k.Brokers) == 0 {
		return nil, errors.New("kafka: no brokers configured")
	}
	codec, ok := codecs[k.Compression]
	if !ok {
		return nil, fmt.Errorf("kafka: no compression %q", k.Compression)
	}
	c := &Client{Brokers: k.Brokers, MaxBatchBytes: k.MaxMessageBytes, Compression: codec}
	if k.TLS != nil {
		ca, err := os.ReadFile(k.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka tls: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, fmt.Errorf("kafka tls: %s has no certificate", k.TLS.CAFile)
		}
		c.TLS = certs.ClientConfig(pool)
		if k.TLS.CertFile != "" {
			cert, err := certs.LoadKeyPair(k.TLS.CertFile, k.TLS.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("kafka tls: %w", err)
			}
			c.TLS.Certificates = []tls.Certificate{cert}
		}
	}
	if k.SASL != nil {
		pw, err := os.ReadFile(k.SASL.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("kafka sasl: %w", err)
		}
		algo := scram.SHA512
		if k.SASL.Mechanism == "SCRAM-SHA-256" {
			algo = scram.SHA256
		}
		if c.SASL, err = scram.Mechanism(algo, k.SASL.Username, strings.TrimRight(string(pw), "\r\n")); err != nil {
			return nil, fmt.Errorf("kafka sasl: %w", err)
		}
	}
	return c, nil
}

// MaxBatchBytes bounds a record batch the relay produces to one partition
// unless configured: Kafka's default message.max.bytes, which the embedded
// broker shares (the configuration's default too). A broker refuses a
// larger batch outright, and the relay, publishing in order, would retry it
// forever: with 64 MiB here one 500-claim insurer batch (500 events of
// 83 KB) stopped all publishing.
const MaxBatchBytes = config.DefaultKafkaMaxMessageBytes

// Writer is a producer for the outbox relay: acks from all in-sync
// replicas, records partitioned by key (murmur2, as Java clients do), and a
// short batch timeout since the relay hands over whole batches at once.
func (c *Client) Writer(batch int) *kafka.Writer {
	return &kafka.Writer{
		Addr:         kafka.TCP(c.Brokers...),
		Balancer:     &kafka.Murmur2Balancer{},
		Compression:  c.Compression,
		RequiredAcks: kafka.RequireAll,
		BatchSize:    batch,
		BatchBytes:   int64(cmp.Or(c.MaxBatchBytes, MaxBatchBytes)),
		BatchTimeout: 2 * time.Millisecond,
		MaxAttempts:  3,
		WriteTimeout: 10 * time.Second,
		ReadTimeout:  10 * time.Second,
		Transport:    &kafka.Transport{TLS: c.TLS, SASL: c.SASL, DialTimeout: 5 * time.Second, IdleTimeout: 30 * time.Second},
	}
}

// Dialer is for readers and admin connections.
func (c *Client) Dialer() *kafka.Dialer {
	return &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, TLS: c.TLS, SASLMechanism: c.SASL}
}

// GroupReader is a consumer group's reader of topics, from their first
// offset where the group has committed none, waiting at most maxWait for a
// fetch. It watches the topics' partitions (every PartitionWatchInterval):
// a partition added while it reads is read too. Without watching, a
// kafka-go group reads the partitions it was given when it joined until
// it is restarted, and records keyed to a new partition wait unread
// (an outbound request was not delivered, a notice not ingested).
func (c *Client) GroupReader(group string, topics []string, maxWait time.Duration) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{Brokers: c.Brokers, GroupID: group, GroupTopics: topics, Dialer: c.Dialer(),
		StartOffset: kafka.FirstOffset, MaxWait: maxWait, MinBytes: 1, MaxBytes: 16 << 20,
		WatchPartitionChanges: true, PartitionWatchInterval: PartitionWatchInterval})
}

// PartitionWatchInterval is how often a GroupReader asks for its topics'
// partitions (kafka-go's default).
const PartitionWatchInterval = 5 * time.Second

// MissingTopics names those of topics the cluster does not have, asking
// without creating them. A consumer group that subscribes to a topic the
// cluster lacks reads nothing at all, from any of its topics (kafka-go's
// group never settles), so a reader asks first and says which.
func (c *Client) MissingTopics(ctx context.Context, topics ...string) ([]string, error) {
	kc := &kafka.Client{Addr: kafka.TCP(c.Brokers...), Timeout: 10 * time.Second,
		Transport: &kafka.Transport{TLS: c.TLS, SASL: c.SASL, DialTimeout: 5 * time.Second}}
	res, err := kc.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, t := range res.Topics {
		switch {
		case errors.Is(t.Error, kafka.UnknownTopicOrPartition):
			missing = append(missing, t.Name)
		case t.Error != nil:
			return nil, fmt.Errorf("topic %s: %w", t.Name, t.Error)
		}
	}
	return missing, nil
}

// WaitForTopics returns once the cluster has every one of topics (nil), or
// when ctx ends (its error), asking every interval. onMissing hears of the
// first answer that names a missing topic or fails. A kafka-go consumer
// group started on a topic the cluster lacks never reads it, even once it
// is created (against the embedded broker: nothing in 30 s), so a consumer
// that must not go deaf starts only once its topic is there.
func (c *Client) WaitForTopics(ctx context.Context, every time.Duration, onMissing func(missing []string, err error), topics ...string) error {
	told := false
	for {
		missing, err := c.MissingTopics(ctx, topics...)
		if err == nil && len(missing) == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !told && onMissing != nil {
			onMissing(missing, err)
			told = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}

// LastOfEach keeps the message of each topic's partition with the highest
// offset: committing it commits the partition's earlier offsets too, so a
// consumer that owes the offsets of a failed commit keeps one message a
// partition, however long the broker refuses.
func LastOfEach(msgs []kafka.Message) []kafka.Message {
	type partition struct {
		topic string
		n     int
	}
	last := map[partition]kafka.Message{}
	for _, m := range msgs {
		k := partition{m.Topic, m.Partition}
		if l, ok := last[k]; !ok || m.Offset > l.Offset {
			last[k] = m
		}
	}
	out := make([]kafka.Message, 0, len(last))
	for _, m := range last {
		out = append(out, m)
	}
	return out
}
