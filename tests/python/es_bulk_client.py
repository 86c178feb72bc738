"""Sends documents to a siemrelay `elasticsearch` receiver with an official Python client,
the way a product's Elasticsearch/OpenSearch connector does.

Usage: es_bulk_client.py --url http://127.0.0.1:PORT --client elasticsearch|opensearch
       --helper bulk|streaming_bulk --count N [--chunk C] [--run ID] [--index NAME]
       [--user U --password P | --api-key ENCODED] [--retries R]

`elasticsearch` is Elastic's client (it checks the X-Elastic-Product header), `opensearch` is
opensearch-py. `streaming_bulk` retries items answered 429 (max_retries=R) and each client's
transport retries a whole-request 429/503. Half of the documents carry a UUID `_id`, half a text
`_id`; actions alternate `index` and `create`. Prints one JSON line:
{"sent": N, "ok": K, "errors": [...], "info": <GET / document>}.
"""

import argparse
import json
import sys
import uuid


def actions(args):
    for i in range(args.count):
        doc_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{args.run}/{i}")) if i % 2 == 0 else f"nt-{args.run}-{i}"
        yield {
            "_op_type": "create" if i % 4 < 2 else "index",
            "_index": args.index,
            "_id": doc_id,
            "_source": {
                "@timestamp": "2026-11-20T09:00:00.123Z",
                "message": f"event {i}: action by José Müller — \"quoted\" and tab\there",
                "event_type": "login",
                "severity": ["info", "warning", "error"][i % 3],
                "category": "Authentication",
                "seq": i,
                "run": args.run,
                "actor": {"email": "jose.mueller@corp.example", "roles": ["admin", "auditor"]},
                "details": {"mfa": i % 2 == 0, "score": 0.5, "ticket": None},
            },
        }


def client(args):
    auth = {}
    if args.user:
        auth["basic_auth" if args.client == "elasticsearch" else "http_auth"] = (args.user, args.password)
    if args.api_key:
        if args.client == "elasticsearch":
            auth["api_key"] = args.api_key
        else:
            auth["headers"] = {"Authorization": f"ApiKey {args.api_key}"}
    if args.client == "elasticsearch":
        from elasticsearch import Elasticsearch

        return Elasticsearch(args.url, max_retries=args.retries, retry_on_status=(429, 502, 503, 504), **auth)
    from opensearchpy import OpenSearch

    return OpenSearch([args.url], max_retries=args.retries, retry_on_status=(429, 502, 503, 504), **auth)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--client", choices=["elasticsearch", "opensearch"], required=True)
    parser.add_argument("--helper", choices=["bulk", "streaming_bulk"], required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--run", default="run")
    parser.add_argument("--index", default="logs-neuraltrust")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--api-key")
    parser.add_argument("--retries", type=int, default=3)
    args = parser.parse_args()

    if args.client == "elasticsearch":
        from elasticsearch import helpers
    else:
        from opensearchpy import helpers
    es = client(args)
    info = es.info()
    ok, errors = 0, []
    if args.helper == "bulk":
        try:
            ok, failed = helpers.bulk(es, actions(args), chunk_size=args.chunk, raise_on_error=False, stats_only=False)
            errors = [json.dumps(item) for item in failed]
        except Exception as error:  # noqa: BLE001 - reported to the test
            errors.append(repr(error))
    else:
        for success, item in helpers.streaming_bulk(
            es,
            actions(args),
            chunk_size=args.chunk,
            max_retries=args.retries,
            initial_backoff=0.05,
            max_backoff=0.5,
            raise_on_error=False,
            yield_ok=True,
        ):
            if success:
                ok += 1
            else:
                errors.append(json.dumps(item))
    print(json.dumps({"sent": args.count, "ok": ok, "errors": errors[:20], "info": dict(info)}))
    return 0 if not errors and ok == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
