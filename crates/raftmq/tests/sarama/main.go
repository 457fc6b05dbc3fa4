// Sarama (Go's Kafka client) against raftmq, run by crates/raftmq/tests/kafka.rs: creates a
// topic of 3 partitions with ClusterAdmin, produces n keyed records with an idempotent acks=all
// producer, consumes them with a consumer group (Sarama's default offset settings, which commit
// with OffsetCommit v1), then reads the group's committed offsets back and prints one JSON line.
//
//	sarama-check BOOTSTRAP TOPIC N
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

// handler records every value consumed and marks it for commit; done closes at n distinct values.
type handler struct {
	mu   sync.Mutex
	seen map[string]bool
	want int
	done chan struct{}
	once sync.Once
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		s.MarkMessage(m, "")
		h.mu.Lock()
		h.seen[string(m.Value)] = true
		if len(h.seen) >= h.want {
			h.once.Do(func() { close(h.done) })
		}
		h.mu.Unlock()
	}
	return nil
}

func main() {
	brokers := strings.Split(os.Args[1], ",")
	topic := os.Args[2]
	n, _ := strconv.Atoi(os.Args[3])
	conf := sarama.NewConfig()
	conf.Version = sarama.V2_1_0_0
	conf.Producer.Idempotent = true
	conf.Producer.RequiredAcks = sarama.WaitForAll
	conf.Producer.Return.Successes = true
	conf.Net.MaxOpenRequests = 1
	conf.Consumer.Offsets.Initial = sarama.OffsetOldest
	admin, err := sarama.NewClusterAdmin(brokers, conf)
	if err != nil {
		panic(err)
	}
	detail := &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}
	if err := admin.CreateTopic(topic, detail, false); err != nil {
		panic(err)
	}
	producer, err := sarama.NewSyncProducer(brokers, conf)
	if err != nil {
		panic(err)
	}
	for i := 0; i < n; i++ {
		msg := &sarama.ProducerMessage{
			Topic: topic,
			Key:   sarama.StringEncoder(fmt.Sprintf("k%d", i%10)),
			Value: sarama.StringEncoder(fmt.Sprintf("v%d", i)),
		}
		if _, _, err := producer.SendMessage(msg); err != nil {
			panic(err)
		}
	}
	producer.Close()
	group, err := sarama.NewConsumerGroup(brokers, "sarama-group", conf)
	if err != nil {
		panic(err)
	}
	h := &handler{seen: map[string]bool{}, want: n, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for ctx.Err() == nil {
			if err := group.Consume(ctx, []string{topic}, h); err != nil {
				fmt.Fprintln(os.Stderr, "consume:", err)
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
	select {
	case <-h.done:
	case <-time.After(60 * time.Second):
		panic(fmt.Sprintf("consumed %d of %d", len(h.seen), n))
	}
	time.Sleep(1500 * time.Millisecond) // an auto-commit interval
	cancel()
	group.Close() // commits what was marked
	offsets, err := admin.ListConsumerGroupOffsets("sarama-group", map[string][]int32{topic: {0, 1, 2}})
	if err != nil {
		panic(err)
	}
	committed := int64(0)
	for _, block := range offsets.Blocks[topic] {
		if block.Err != sarama.ErrNoError {
			panic(block.Err)
		}
		committed += block.Offset
	}
	fmt.Printf("{\"produced\": %d, \"consumed\": %d, \"committed\": %d}\n", n, len(h.seen), committed)
}
