package kafkatest

import (
	"testing"

	"github.com/perkeso/jambatan/cmd/gateway/internal/broker"
)

// Broker starts an embedded broker on a free loopback port with topics,
// persisting in dataDir ("" for memory only), and closes it when the test
// ends. A test that restarts its broker on the same port starts it itself.
func Broker(t testing.TB, dataDir string, topics ...string) *broker.Embedded {
	t.Helper()
	b, err := broker.Start(dataDir, 0, topics...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}
