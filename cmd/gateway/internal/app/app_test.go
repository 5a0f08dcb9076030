package app

import (
	"errors"
	"testing"

	"github.com/perkeso/jambatan/cmd/gateway/internal/config"
	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// TestEventBuilderBound: the events' bound follows kafka.max_message_bytes.
func TestEventBuilderBound(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cluster  int // kafka.max_message_bytes
		value    int // an event's value
		tooLarge bool
	}{
		{"ok/default-cluster", config.DefaultKafkaMaxMessageBytes, 900 << 10, false},
		{"fail/default-cluster", config.DefaultKafkaMaxMessageBytes, 1 << 20, true},
		{"ok/small-cluster", 256 << 10, 200 << 10, false},
		{"fail/small-cluster", 256 << 10, 250 << 10, true},
		{"ok/large-cluster", 4 << 20, 2 << 20, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{File: config.File{Kafka: config.Kafka{MaxMessageBytes: tc.cluster}}}
			b := eventBuilder(cfg, events.DefaultTopics)
			err := b.Check(store.Message{Value: make([]byte, tc.value)}, nil)
			if errors.Is(err, events.ErrTooLarge) != tc.tooLarge {
				t.Fatalf("Check: %v", err)
			}
		})
	}
}
