"""Consumer groups against a raftmq cluster, for crates/raftmq/tests/kafka_groups.rs. Each
command prints JSON lines; the last one is its result.

    kafka_groups.py create BOOTSTRAP TOPIC PARTITIONS    CreateTopics (kafka-python admin)
    kafka_groups.py produce BOOTSTRAP TOPIC FROM TO       keyed records key-i/value-i, acks=all
    kafka_groups.py rebalance BOOTSTRAP TOPIC GROUP N     kafka-python: two consumers split the
        partitions, N/2 records are produced and consumed, a third consumer joins, the rest is
        produced and consumed; every poll is committed (a poll whose commit fails is not
        counted: its records come again to the partition's next owner). Prints the
        assignments seen and every record counted.
    kafka_groups.py resume BOOTSTRAP TOPIC GROUP IDLE_S   kafka-python: a new group member reads
        until nothing came for IDLE_S seconds, committing: {"values": [...]}
    kafka_groups.py confluent BOOTSTRAP TOPIC GROUP N     confluent-kafka: a group consumer reads
        N records and commits; a second one in the group then reads nothing old
"""

import json
import os
import sys
import threading
import time

# This directory holds kafka.py (the other Kafka test's script), which would shadow the
# kafka-python package.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != HERE]


def say(value):
    print(json.dumps(value), flush=True)


def create(bootstrap, topic, partitions):
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    admin.create_topics([NewTopic(topic, int(partitions), 1)])
    admin.close()
    say({"created": topic})


def produce(bootstrap, topic, first, last):
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all", retries=20)
    futures = [
        producer.send(topic, key=f"key-{i}".encode(), value=f"value-{i}".encode())
        for i in range(int(first), int(last))
    ]
    producer.flush()
    for f in futures:
        f.get(timeout=30)
    producer.close()
    say({"produced": int(last) - int(first)})


def group_consumer(bootstrap, topic, group, client_id):
    from kafka import KafkaConsumer
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

    return KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap.split(","),
        group_id=group,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        partition_assignment_strategy=[RoundRobinPartitionAssignor],
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        max_poll_interval_ms=30000,
    )


class Member(threading.Thread):
    """A group member polling and committing until told to stop."""

    def __init__(self, bootstrap, topic, group, name):
        super().__init__(daemon=True)
        self.args = (bootstrap, topic, group, name)
        self.name_ = name
        self.records = []
        self.assignments = []
        self.failed_commits = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def assignment(self):
        with self.lock:
            return self.assignments[-1] if self.assignments else []

    def run(self):
        from kafka.errors import CommitFailedError, KafkaError

        consumer = group_consumer(*self.args)
        while not self.stop.is_set():
            polled = consumer.poll(timeout_ms=200)
            now = sorted(tp.partition for tp in consumer.assignment())
            with self.lock:
                if not self.assignments or self.assignments[-1] != now:
                    self.assignments.append(now)
            got = [(tp.partition, r.offset, r.value.decode()) for tp, rs in polled.items() for r in rs]
            if not got:
                continue
            try:
                consumer.commit()
            except (CommitFailedError, KafkaError):
                # Not committed: the records come again to whoever owns the partition next.
                self.failed_commits += 1
                continue
            with self.lock:
                self.records.extend(got)
        consumer.close(autocommit=False)


def wait_for(what, check, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def rebalance(bootstrap, topic, group, count):
    count = int(count)
    members = [Member(bootstrap, topic, group, "c1"), Member(bootstrap, topic, group, "c2")]
    for m in members:
        m.start()

    def covered(ms):
        parts = [set(m.assignment()) for m in ms]
        union = set().union(*parts)
        return all(parts) and union == {0, 1, 2, 3} and sum(map(len, parts)) == 4

    def consumed():
        return sum(len(m.records) for m in members)

    wait_for("two members to split the partitions", lambda: covered(members))
    two = [m.assignment() for m in members]
    produce(bootstrap, topic, 0, count // 2)
    wait_for("the first half consumed", lambda: consumed() >= count // 2)

    members.append(Member(bootstrap, topic, group, "c3"))
    members[2].start()
    wait_for(
        "three members to split the partitions",
        lambda: covered(members) and all(m.assignment() != two[i] for i, m in enumerate(members[:2])),
    )
    three = [m.assignment() for m in members]
    produce(bootstrap, topic, count // 2, count)
    wait_for("every record consumed", lambda: consumed() >= count)
    time.sleep(1)  # anything consumed twice would show now
    for m in members:
        m.stop.set()
    for m in members:
        m.join(timeout=30)
    say({
        "two": two,
        "three": three,
        "records": [r for m in members for r in m.records],
        "failed_commits": sum(m.failed_commits for m in members),
    })


def resume(bootstrap, topic, group, idle):
    consumer = group_consumer(bootstrap, topic, group, "c4")
    values = []
    last = time.time()
    while time.time() - last < float(idle):
        polled = consumer.poll(timeout_ms=200)
        got = [r.value.decode() for rs in polled.values() for r in rs]
        if got:
            consumer.commit()
            values.extend(got)
            last = time.time()
    consumer.close(autocommit=False)
    say({"values": values})


def confluent_consumer(bootstrap, topic, group):
    from confluent_kafka import Consumer

    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
    })
    c.subscribe([topic])
    return c


def confluent(bootstrap, topic, group, count):
    def consumer():
        return confluent_consumer(bootstrap, topic, group)

    first = consumer()
    values = []
    deadline = time.time() + 60
    while len(values) < int(count) and time.time() < deadline:
        msg = first.poll(0.5)
        if msg is None or msg.error():
            continue
        values.append(msg.value().decode())
        first.commit(message=msg, asynchronous=False)
    assignment = sorted(tp.partition for tp in first.assignment())
    committed = sorted(
        (tp.partition, tp.offset) for tp in first.committed(first.assignment(), timeout=10)
    )
    first.close()
    second = consumer()
    again = []
    end = time.time() + 8
    while time.time() < end:
        msg = second.poll(0.5)
        if msg is not None and not msg.error():
            again.append(msg.value().decode())
    second_assignment = sorted(tp.partition for tp in second.assignment())
    second.close()
    say({
        "values": values,
        "assignment": assignment,
        "committed": committed,
        "again": again,
        "second_assignment": second_assignment,
    })


def delete_group(bootstrap, topic, group):
    """A member of the group reads what has no committed offset (for 10 s); then DeleteGroups
    through confluent-kafka's AdminClient: refused while the group has a member, done once it has none, GROUP_ID_NOT_FOUND the second time; a member of the same
    group then reads from the earliest offset again (the committed offsets are gone)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})

    def outcome():
        future = admin.delete_consumer_groups([group], request_timeout=15)[group]
        try:
            future.result()
            return "OK"
        except KafkaException as e:
            return e.args[0].name()

    member = confluent_consumer(bootstrap, topic, group)
    member_read = 0
    end = time.time() + 10
    while time.time() < end:
        msg = member.poll(0.5)
        if msg is not None and not msg.error():
            member_read += 1
    with_member = outcome()
    member.close()
    deleted = outcome()
    again = outcome()
    reader = confluent_consumer(bootstrap, topic, group)
    reread = 0
    end = time.time() + 10
    while time.time() < end:
        msg = reader.poll(0.5)
        if msg is not None and not msg.error():
            reread += 1
    reader.close()
    say({"member_read": member_read, "with_member": with_member, "deleted": deleted,
         "again": again, "reread": reread})


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"create": create, "produce": produce, "rebalance": rebalance, "resume": resume,
     "confluent": confluent, "delete_group": delete_group}[command](*args)
