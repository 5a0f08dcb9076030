package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/perkeso/jambatan/cmd/gateway/internal/outbound"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
)

func main() {
	dir := os.Args[1]
	n, _ := strconv.Atoi(os.Args[2])
	var dev struct {
		Kafka string `json:"kafka_bootstrap"`
	}
	b, _ := os.ReadFile(dir + "/dev.json")
	_ = json.Unmarshal(b, &dev)
	key, err := partnerkit.LoadSigningKey(dir + "/pki/backoffice-signing.jwk.json")
	if err != nil {
		panic(err)
	}
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		req := fmt.Appendf(nil, `{"id":"burst-%d-%d","partner":"demo-agency","messageType":"NotifyDecision","caseId":"MY:PERKESO:XB-%d","payload":{"subject":"WORK_RELATEDNESS","outcome":"ACCEPTED","decisionDate":"2026-03-20","legalBasis":"Act 4 s.24"}}`, time.Now().Unix(), i, i%40)
		sig, err := partnerkit.Sign(req, key, partnerkit.Detached)
		if err != nil {
			panic(err)
		}
		msgs[i] = kafka.Message{Key: fmt.Appendf(nil, "case-%d", i%40), Value: req, Headers: []kafka.Header{{Key: outbound.RequestSignatureHeader, Value: []byte(sig)}}}
	}
	w := &kafka.Writer{Addr: kafka.TCP(dev.Kafka), Topic: "perkeso.outbound.v1", Balancer: &kafka.Hash{}, BatchSize: 1000, BatchTimeout: time.Millisecond}
	defer w.Close()
	start := time.Now()
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		panic(err)
	}
	fmt.Println("written", n, time.Since(start))
}
