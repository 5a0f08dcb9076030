// Package kafkatest starts embedded brokers for tests and reads topics
// back, with kafka-go against a real Kafka-protocol broker.
package kafkatest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// ReadAll reads every partition of topic from the beginning until at least
// want messages arrived (or timeout), and returns them grouped by partition
// in offset order, concatenated.
func ReadAll(t testing.TB, addr, topic string, want int, timeout time.Duration) []kafka.Message {
	t.Helper()
	conn, err := kafka.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	deadline := time.Now().Add(timeout)
	byPart := make([][]kafka.Message, len(parts))
	total := func() int {
		n := 0
		for _, p := range byPart {
			n += len(p)
		}
		return n
	}
	for total() < want && time.Now().Before(deadline) {
		for i, p := range parts {
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: p.ID, MaxWait: 100 * time.Millisecond, MinBytes: 1, MaxBytes: 16 << 20})
			_ = r.SetOffset(int64(len(byPart[i])))
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				m, err := r.ReadMessage(ctx)
				cancel()
				if err != nil {
					if !errors.Is(err, context.DeadlineExceeded) {
						t.Logf("read %s/%d: %v", topic, p.ID, err)
					}
					break
				}
				byPart[i] = append(byPart[i], m)
			}
			r.Close()
		}
	}
	var out []kafka.Message
	for _, p := range byPart {
		out = append(out, p...)
	}
	return out
}

// Header returns a header's value.
func Header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
