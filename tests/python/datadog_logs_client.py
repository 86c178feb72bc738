"""Sends logs to a siemrelay `datadog` receiver with Datadog's official Python client
(datadog-api-client, LogsApi.submit_log), the way a product's Datadog connector does.

Usage: datadog_logs_client.py --address 127.0.0.1:PORT --api-key KEY --count N --batch B
       [--run ID] [--retry] [--encoding gzip|deflate|identity|mixed]

The client is pointed at the receiver with its documented "full site DNS name" server
(`{protocol}://{name}`). With --retry the client's own retry (enable_retry: 429 and 5xx, with
backoff) is on, and every status it retried is recorded. Prints one JSON line:
{"sent": N, "retried_statuses": [...], "errors": [...]}.
"""

import argparse
import json
import sys

from datadog_api_client import ApiClient, Configuration
from datadog_api_client.exceptions import ApiException
from datadog_api_client.rest import ClientRetry
from datadog_api_client.v2.api.logs_api import LogsApi
from datadog_api_client.v2.model.content_encoding import ContentEncoding
from datadog_api_client.v2.model.http_log import HTTPLog
from datadog_api_client.v2.model.http_log_item import HTTPLogItem

RETRIED = []


class RecordingRetry(ClientRetry):
    """The client's own retry policy, recording the status of every retried answer."""

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        if response is not None:
            RETRIED.append(response.status)
        return super().increment(method, url, response, error, _pool, _stacktrace)


def log(run, i):
    return HTTPLogItem(
        ddsource="neuraltrust",
        ddtags=f"env:test,run:{run}",
        hostname="gw-1",
        service="audit",
        message=f"event {i}: action by José Müller — \"quoted\" and tab\there",
        status=["info", "warning", "error", "critical"][i % 4],
        seq=i,
        run=run,
        category="Authentication",
        details={"n": i, "mfa": i % 2 == 0, "score": 0.5, "roles": ["admin", "auditor"], "ticket": None},
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--run", default="run")
    parser.add_argument("--retry", action="store_true")
    parser.add_argument("--encoding", default="mixed")
    args = parser.parse_args()

    configuration = Configuration()
    configuration.api_key["apiKeyAuth"] = args.api_key
    configuration.server_operation_index["v2.submit_log"] = 1
    configuration.server_operation_index["submit_log"] = 1
    variables = {"name": args.address, "protocol": "http"}
    configuration.server_operation_variables["v2.submit_log"] = variables
    configuration.server_operation_variables["submit_log"] = variables
    if args.retry:
        configuration.retry_policy = RecordingRetry(total=50, backoff_factor=0.05, backoff_max=1.0)
    sent, errors = 0, []
    with ApiClient(configuration) as api_client:
        api = LogsApi(api_client)
        for start in range(0, args.count, args.batch):
            items = [log(args.run, i) for i in range(start, min(start + args.batch, args.count))]
            encoding = args.encoding
            if encoding == "mixed":
                encoding = ["gzip", "deflate", "identity"][(start // args.batch) % 3]
            kwargs = {}
            if encoding == "gzip":
                kwargs["content_encoding"] = ContentEncoding.GZIP
            elif encoding == "deflate":
                kwargs["content_encoding"] = ContentEncoding.DEFLATE
            try:
                answer = api.submit_log(body=HTTPLog(items), **kwargs)
                if answer != {}:
                    errors.append(f"unexpected answer {answer!r}")
                sent += len(items)
            except ApiException as error:
                errors.append(f"{error.status}: {error.body}")
    print(json.dumps({"sent": sent, "retried_statuses": RETRIED, "errors": errors}))
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
