#!/usr/bin/env python3
"""Send OTLP log records with the official OpenTelemetry Python SDK.

Usage: otlp_send.py --protocol grpc|http --endpoint URL --count N [--gzip] [--token T]
                    [--timeout SECONDS] [--ca FILE [--client-cert FILE --client-key FILE]]

Record i carries: body "python record i", severity WARN (13, text "WARN"), attributes
seq=i (int), user="user-i", event.name="python.login", event.id=<a fixed UUID with i in the
last 12 hex digits>, ratio=0.5, tags=["a", "b"]; resource service.name="python-sdk",
host.name="test-host"; instrumentation scope "siemrelay.python" version "2.0".

Exits 0 only when every export call succeeded and all N records were exported.
For http, --endpoint is the full logs URL (http://host:4318/v1/logs).
--timeout bounds each export call including the SDK's own retries of 503/UNAVAILABLE
(default 10 s, the SDK's default); raise it when the receiver is expected to push back longer.
--ca makes the connection TLS, trusting the CA in FILE (gRPC endpoint: https://host:port);
--client-cert and --client-key present a client certificate (mutual TLS).
"""

import argparse
import sys

import grpc

from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.grpc.exporter import Compression as GrpcCompression
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

EVENT_ID_PREFIX = "0192f0c4-8a52-7c3e-9d4b-"


def event_id(i: int) -> str:
    return f"{EVENT_ID_PREFIX}{i:012x}"


def read(path):
    with open(path, "rb") as file:
        return file.read()


def make_exporter(args, results):
    headers = {"authorization": f"Bearer {args.token}"} if args.token else None
    if args.protocol == "grpc":
        base = GrpcExporter
        kwargs = dict(
            endpoint=args.endpoint,
            insecure=args.ca is None,
            headers=headers,
            compression=GrpcCompression.Gzip if args.gzip else GrpcCompression.NoCompression,
            timeout=args.timeout,
        )
        if args.ca:
            kwargs["credentials"] = grpc.ssl_channel_credentials(
                root_certificates=read(args.ca),
                private_key=read(args.client_key) if args.client_key else None,
                certificate_chain=read(args.client_cert) if args.client_cert else None,
            )
    else:
        base = HttpExporter
        kwargs = dict(
            endpoint=args.endpoint,
            headers=headers,
            compression=HttpCompression.Gzip if args.gzip else HttpCompression.NoCompression,
            timeout=args.timeout,
        )
        if args.ca:
            kwargs.update(
                certificate_file=args.ca,
                client_certificate_file=args.client_cert,
                client_key_file=args.client_key,
            )

    class CheckingExporter(base):
        """Records the result of every export call."""

        def export(self, batch):
            result = super().export(batch)
            results.append((result, len(batch)))
            return result

    return CheckingExporter(**kwargs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=["grpc", "http"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--token")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--ca")
    parser.add_argument("--client-cert")
    parser.add_argument("--client-key")
    args = parser.parse_args()

    results = []
    exporter = make_exporter(args, results)
    resource = Resource.create({"service.name": "python-sdk", "host.name": "test-host"})
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    logger = provider.get_logger("siemrelay.python", "2.0")
    for i in range(args.count):
        logger.emit(
            body=f"python record {i}",
            severity_number=SeverityNumber.WARN,
            severity_text="WARN",
            event_name="python.login",
            attributes={
                "seq": i,
                "user": f"user-{i}",
                "event.name": "python.login",
                "event.id": event_id(i),
                "ratio": 0.5,
                "tags": ["a", "b"],
            },
        )
    flushed = provider.force_flush(int(max(30.0, 3 * args.timeout) * 1000))
    provider.shutdown()

    exported = sum(n for result, n in results if result.name == "SUCCESS")
    failed = [result.name for result, _ in results if result.name != "SUCCESS"]
    if not flushed or failed or exported != args.count:
        print(
            f"export failed: flushed={flushed} exported={exported}/{args.count} failures={failed}",
            file=sys.stderr,
        )
        return 1
    print(f"exported {exported} log records over {args.protocol}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
