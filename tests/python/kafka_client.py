"""An independent Kafka client (confluent-kafka) for siemrelay's kafka end-to-end tests.

    kafka_client.py create-topic BOOTSTRAP TOPIC PARTITIONS
    kafka_client.py produce BOOTSTRAP TOPIC [one-per-batch]   < payloads, one per line (sent as is; key = line number)
    kafka_client.py consume BOOTSTRAP TOPIC COUNT TIMEOUT_S   > one JSON object per message
    kafka_client.py committed BOOTSTRAP TOPIC GROUP   > {"committed": sum of GROUP's committed offsets}

`consume` reads from the earliest offset with a fresh group and prints
{"topic", "partition", "offset", "key", "value", "headers": {name: text}} per message,
then exits once COUNT distinct messages were read (by their `event_id` header when they have
one, so redelivered duplicates do not count twice) or TIMEOUT_S passed (exit code 3 if fewer).
"""

import json
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def create_topic(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=int(partitions), replication_factor=1)])
    for name, future in futures.items():
        try:
            future.result(timeout=30)
        except Exception as e:  # an existing topic is fine
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise
    print(json.dumps({"created": topic, "partitions": int(partitions)}))


def produce(bootstrap, topic, batching="batched"):
    settings = {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"}
    if batching == "one-per-batch":
        # tansu 0.6 serves only record batches that start at or after a fetch offset, so a
        # consumer resuming inside a batch stalls there: one record per batch avoids that.
        settings["batch.num.messages"] = 1
    producer = Producer(settings)
    failures = []

    def report(err, _msg):
        if err is not None:
            failures.append(str(err))

    count = 0
    for number, line in enumerate(sys.stdin.buffer):
        payload = line.rstrip(b"\n")
        producer.produce(topic, value=payload, key=str(number).encode(), on_delivery=report,
                         headers=[("producer", b"kafka_client.py")])
        count += 1
        producer.poll(0)
    remaining = producer.flush(60)
    print(json.dumps({"produced": count, "failed": failures, "unflushed": remaining}))
    return 0 if not failures and remaining == 0 else 2


def consume(bootstrap, topic, count, timeout):
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "kafka-client-" + uuid.uuid4().hex,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    deadline = time.monotonic() + float(timeout)
    seen = set()
    while len(seen) < int(count) and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            print(json.dumps({"error": str(message.error())}), file=sys.stderr)
            continue
        headers = {name: (value.decode("utf-8", "replace") if value is not None else None)
                   for name, value in (message.headers() or [])}
        key = message.key()
        print(json.dumps({
            "topic": message.topic(),
            "partition": message.partition(),
            "offset": message.offset(),
            "key": key.decode("utf-8", "replace") if key is not None else None,
            "value": (message.value() or b"").decode("utf-8", "replace"),
            "headers": headers,
        }), flush=True)
        seen.add(headers.get("event_id") or (message.topic(), message.partition(), message.offset()))
    consumer.close()
    return 0 if len(seen) >= int(count) else 3


def committed(bootstrap, topic, group):
    from confluent_kafka import TopicPartition
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    metadata = consumer.list_topics(topic, timeout=30)
    partitions = [TopicPartition(topic, p) for p in metadata.topics[topic].partitions]
    offsets = consumer.committed(partitions, timeout=30)
    consumer.close()
    print(json.dumps({"committed": sum(max(tp.offset, 0) for tp in offsets)}))
    return 0


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 64
    command, args = argv[1], argv[2:]
    if command == "create-topic" and len(args) == 3:
        create_topic(*args)
        return 0
    if command == "produce" and len(args) in (2, 3):
        return produce(*args)
    if command == "consume" and len(args) == 4:
        return consume(*args)
    if command == "committed" and len(args) == 3:
        return committed(*args)
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))
