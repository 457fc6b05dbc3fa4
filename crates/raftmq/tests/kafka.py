"""Kafka clients for crates/raftmq/tests/kafka.rs: confluent-kafka (librdkafka) against a
raftmq cluster's Kafka listeners. Each command prints one JSON line with what it saw.

    kafka.py create BOOTSTRAP TOPIC PARTITIONS       CreateTopics twice: {"first", "second"}
    kafka.py produce BOOTSTRAP TOPIC PARTITIONS N     N records acks=all, round robin over the
                                                      partitions; after N/2 it prints
                                                      {"half": ...} and waits for a line on
                                                      stdin (the test moves the leader then)
    kafka.py consume BOOTSTRAP TOPIC PARTITIONS N     assign() every partition from offset 0,
                                                      read N records: {"records": [[p, off, value]]}
"""

import json
import sys

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def say(value):
    print(json.dumps(value), flush=True)


def create(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})

    def attempt():
        futures = admin.create_topics([NewTopic(topic, int(partitions), -1)], operation_timeout=10)
        try:
            futures[topic].result(timeout=20)
            return None
        except KafkaException as e:
            return e.args[0].name()

    say({"first": attempt(), "second": attempt()})


def produce(bootstrap, topic, partitions, count):
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": False,
        "linger.ms": 5,
        "message.timeout.ms": 30000,
    })
    errors = []
    delivered = []

    def report(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            delivered.append([msg.partition(), msg.offset(), msg.value().decode()])

    count = int(count)
    partitions = int(partitions)
    for i in range(count):
        producer.produce(topic, value=f"record-{i}".encode(), partition=i % partitions,
                         on_delivery=report)
        if i == count // 2 - 1:
            producer.flush(30)
            say({"half": len(delivered), "errors": errors})
            sys.stdin.readline()
        producer.poll(0)
    producer.flush(30)
    say({"delivered": delivered, "errors": errors})


def consume(bootstrap, topic, partitions, count):
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "unused-no-groups-yet",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    consumer.assign([TopicPartition(topic, p, 0) for p in range(int(partitions))])
    records = []
    for _ in range(600):
        if len(records) >= int(count):
            break
        msg = consumer.poll(0.1)
        if msg is None:
            continue
        if msg.error():
            say({"error": str(msg.error())})
            return
        records.append([msg.partition(), msg.offset(), msg.value().decode()])
    consumer.close()
    say({"records": records})


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"create": create, "produce": produce, "consume": consume}[command](*args)
