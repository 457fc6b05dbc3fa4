"""Kafka clients for crates/raftmq/tests/kafka_idempotence.rs: confluent-kafka (librdkafka)
with idempotent producers, timestamps and topic configs. Each command prints JSON lines.

    create BOOTSTRAP TOPIC PARTITIONS CONFIGS   CreateTopics with CONFIGS (a JSON object):
                                                {"error": null or the error's name}
    produce BOOTSTRAP TOPIC PARTITIONS N KEYS   N keyed records (value "key/i"), idempotent,
                                                acks=all; after N/2 prints {"half": ...} and
                                                waits for a line on stdin (the test kills the
                                                leader then), then {"delivered", "errors"}
    consume BOOTSTRAP TOPIC PARTITIONS          assign() every partition from its low
                                                watermark to its high one:
                                                {"records": [[p, off, key, value]], "low", "high"}
    times BOOTSTRAP TOPIC PARTITION TS...       offsets_for_times: {"offsets": [...]}
    configs BOOTSTRAP TOPIC                     describe_configs: {"configs": {name: value}}
"""

import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic


def say(value):
    print(json.dumps(value), flush=True)


def create(bootstrap, topic, partitions, configs):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(topic, int(partitions), -1, config=json.loads(configs))
    futures = admin.create_topics([new], operation_timeout=10)
    try:
        futures[topic].result(timeout=20)
        say({"error": None})
    except KafkaException as e:
        say({"error": e.args[0].name()})


def produce(bootstrap, topic, partitions, count, keys):
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "message.timeout.ms": 60000,
        "request.timeout.ms": 5000,
        "retry.backoff.ms": 100,
        "topic.metadata.refresh.interval.ms": 1000,
    })
    errors = []
    delivered = []

    def report(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            delivered.append([msg.partition(), msg.offset(), msg.key().decode(),
                              msg.value().decode()])

    count, keys, partitions = int(count), int(keys), int(partitions)
    for i in range(count):
        key = f"key-{i % keys}"
        # The key picks the partition, so one key's records keep their order.
        producer.produce(topic, key=key.encode(), value=f"{key}/{i}".encode(),
                         partition=(i % keys) % partitions, on_delivery=report)
        if i == count // 2 - 1:
            producer.flush(60)
            say({"half": len(delivered), "errors": errors})
            sys.stdin.readline()
            # Keep producing while the cluster recovers: requests in flight meet the dead
            # leader and are retried.
        producer.poll(0)
        # The second half is spread over a few seconds, so the leader dies under it.
        if i >= count // 2 and i % 10 == 0:
            time.sleep(0.01)
    producer.flush(90)
    say({"delivered": delivered, "errors": sorted(set(errors))[:5]})


def consume(bootstrap, topic, partitions):
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "unused-no-groups-yet",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    marks = {}
    for p in range(int(partitions)):
        marks[p] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
    consumer.assign([TopicPartition(topic, p, low) for p, (low, _) in marks.items()])
    wanted = sum(high - low for low, high in marks.values())
    records = []
    deadline = time.time() + 60
    while len(records) < wanted and time.time() < deadline:
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            say({"error": str(msg.error())})
            return
        records.append([msg.partition(), msg.offset(), msg.key().decode(),
                        msg.value().decode()])
    consumer.close()
    say({"records": records, "low": {p: m[0] for p, m in marks.items()},
         "high": {p: m[1] for p, m in marks.items()}})


def times(bootstrap, topic, partition, *stamps):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused-no-groups-yet"})
    asked = [TopicPartition(topic, int(partition), int(ts)) for ts in stamps]
    offsets = []
    for tp in asked:
        found = consumer.offsets_for_times([tp], timeout=10)
        offsets.append(found[0].offset)
    consumer.close()
    say({"offsets": offsets})


def configs(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    found = admin.describe_configs([resource])[resource].result(timeout=20)
    say({"configs": {name: entry.value for name, entry in found.items()}})


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"create": create, "produce": produce, "consume": consume, "times": times,
     "configs": configs}[command](*args)
