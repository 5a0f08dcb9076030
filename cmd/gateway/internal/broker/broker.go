// Package broker runs the embedded Kafka-protocol broker of dev mode and the
// tests: franz-go's kfake, one broker on loopback, persisting to a directory
// so that topics and records survive a restart. It is a development and test
// broker; production connects to a real Kafka cluster.
package broker

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Partitions per topic of the embedded broker.
const Partitions = 3

// Embedded is a running embedded broker.
type Embedded struct {
	c    *kfake.Cluster
	Addr string
}

// Start starts a broker on 127.0.0.1:port (0: any free port), persisting in
// dataDir, with the given topics created if they do not exist.
func Start(dataDir string, port int, topics ...string) (*Embedded, error) {
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(port), kfake.SeedTopics(Partitions, topics...),
		kfake.ClusterID("jambatan-dev")}
	if dataDir != "" {
		opts = append(opts, kfake.DataDir(dataDir), kfake.SyncWrites())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	addrs := c.ListenAddrs()
	if len(addrs) == 0 {
		c.Close()
		return nil, fmt.Errorf("embedded broker: no listener")
	}
	return &Embedded{c: c, Addr: addrs[0]}, nil
}

// Close stops the broker, flushing its state to disk.
func (e *Embedded) Close() { e.c.Close() }
