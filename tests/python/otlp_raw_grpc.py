#!/usr/bin/env python3
"""Send a file's bytes as one OTLP LogsService/Export request with grpcio (Google's gRPC).

Usage: otlp_raw_grpc.py --endpoint HOST:PORT --file REQUEST.bin [--gzip]

The bytes go out as they are (an ExportLogsServiceRequest a test built, or a hostile one).
Prints the call's status code name (OK, RESOURCE_EXHAUSTED, …) on stdout and its message on
stderr; exits 0 whenever the call completed, with any status.
"""

import argparse
import sys

import grpc

EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--file", required=True)
    parser.add_argument("--gzip", action="store_true")
    args = parser.parse_args()
    with open(args.file, "rb") as file:
        request = file.read()
    with grpc.insecure_channel(args.endpoint) as channel:
        export = channel.unary_unary(EXPORT)
        compression = grpc.Compression.Gzip if args.gzip else grpc.Compression.NoCompression
        try:
            export(request, timeout=60, compression=compression)
            print("OK")
        except grpc.RpcError as error:
            print(error.code().name)
            print(error.details(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
