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
