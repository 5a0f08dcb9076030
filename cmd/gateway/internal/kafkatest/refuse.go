package kafkatest

import (
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// RefusingCommits is a Kafka-protocol broker with topic (partitions
// partitions) that refuses the first refused offset-commit requests it is
// sent, each partition's with an error code, and handles the rest as
// usual, counting them in committed. kafka-go's reader tries a commit three
// times before CommitMessages fails, so refused = 3 fails one call; 0
// refuses none, and only counts.
func RefusingCommits(t testing.TB, topic string, partitions int32, refused int64) (addr string, committed *atomic.Int64) {
	t.Helper()
	return RefusingCommitsAfter(t, topic, partitions, refused, nil)
}

// RefusingCommitsAfter is RefusingCommits calling before (when not nil)
// before it answers each refused request: a test stops its consumer there,
// while the consumer waits for its commit.
func RefusingCommitsAfter(t testing.TB, topic string, partitions int32, refused int64, before func()) (addr string, committed *atomic.Int64) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var seen atomic.Int64
	committed = new(atomic.Int64)
	c.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if seen.Add(1) > refused {
			committed.Add(1)
			return nil, nil, false // handled as usual
		}
		if before != nil {
			before()
		}
		r := req.(*kmsg.OffsetCommitRequest)
		resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, 12 // OFFSET_METADATA_TOO_LARGE: any refusal will do
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	return c.ListenAddrs()[0], committed
}

// GroupRefusals say which consumer-group requests a RefusingGroup broker
// refuses; a test sets them as it goes.
type GroupRefusals struct {
	// Joins is how many of the next JoinGroup requests are refused
	// (COORDINATOR_NOT_AVAILABLE). A kafka-go reader reports a failure to
	// its FetchMessage after MaxAttempts refused generations, and joins
	// again after that.
	Joins atomic.Int64
	// Heartbeats is how many of the next Heartbeat requests are refused
	// (REBALANCE_IN_PROGRESS): a kafka-go reader's generation ends at the
	// first, and it joins again.
	Heartbeats atomic.Int64
}

// RefusingGroup is a Kafka-protocol broker with topic (partitions
// partitions) that refuses the group requests r says and handles the rest
// as usual.
func RefusingGroup(t testing.TB, topic string, partitions int32, r *GroupRefusals) (addr string) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	c.ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !take(&r.Joins) {
			return nil, nil, false // handled as usual
		}
		resp := req.(*kmsg.JoinGroupRequest).ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode = 15 // COORDINATOR_NOT_AVAILABLE: any refusal will do
		return resp, nil, true
	})
	c.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !take(&r.Heartbeats) {
			return nil, nil, false
		}
		resp := req.(*kmsg.HeartbeatRequest).ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = 27 // REBALANCE_IN_PROGRESS
		return resp, nil, true
	})
	return c.ListenAddrs()[0]
}

// take takes one from n if it is above 0, and reports whether it did.
func take(n *atomic.Int64) bool {
	for {
		v := n.Load()
		if v <= 0 {
			return false
		}
		if n.CompareAndSwap(v, v-1) {
			return true
		}
	}
}
