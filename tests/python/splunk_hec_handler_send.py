"""Sends events to a Splunk HEC endpoint through the `splunk-hec-handler` logging handler
(PyPI), as an application logging dicts would: one record per request, in --threads threads
(one handler each). The handler does not retry: a 503 reaches the caller as
requests.HTTPError from logger.info(); with --retry-busy this script, like an application, logs
the record again after the reply's Retry-After. Prints one JSON line: the ids sent and what
was seen."""

import argparse
import json
import logging
import sys
import threading
import time
import uuid

import requests
from splunk_hec_handler import SplunkHecHandler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--retry-busy", action="store_true")
    # Written once when the first 503 is seen, for a test that waits on it.
    parser.add_argument("--busy-marker")
    args = parser.parse_args()

    ids = [str(uuid.uuid4()) for _ in range(args.count)]
    seen = {"busy": 0, "busy_replies": [], "errors": []}
    lock = threading.Lock()
    deadline = time.time() + 180

    def run(worker):
        handler = SplunkHecHandler(
            "127.0.0.1", args.token, port=args.port, proto="http", ssl_verify=False,
            source="py-app", sourcetype="py:json", index="main", hostname="py-host")
        logger = logging.getLogger(f"hec-{worker}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        for seq in range(worker, args.count, args.threads):
            record = {"id": ids[seq], "seq": seq, "user": f"u{seq}@acme.example",
                      "detail": {"ok": True, "ratio": seq / 4, "tags": ["a", "b"]},
                      "fields": {"tenant": "t1", "seq_field": str(seq)}}
            while True:
                try:
                    logger.warning(dict(record, fields=dict(record["fields"])))
                    break
                except requests.HTTPError as err:
                    response = err.response
                    body = response.text
                    with lock:
                        if response.status_code == 503:
                            if args.busy_marker and seen["busy"] == 0:
                                with open(args.busy_marker, "w") as marker:
                                    marker.write(body)
                            seen["busy"] += 1
                            if len(seen["busy_replies"]) < 3:
                                seen["busy_replies"].append({
                                    "status": response.status_code, "body": body,
                                    "retry_after": response.headers.get("Retry-After")})
                        else:
                            seen["errors"].append(f"HTTP {response.status_code}: {body}")
                    if response.status_code == 503 and args.retry_busy and time.time() < deadline:
                        time.sleep(int(response.headers.get("Retry-After", "1")) * 0.2)
                        continue
                    break

    threads = [threading.Thread(target=run, args=(w,)) for w in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sys.stdout.write(json.dumps({"sent": ids, "seen": seen}) + "\n")


if __name__ == "__main__":
    main()
