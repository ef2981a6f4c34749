#!/usr/bin/env python3
"""An OTLP receiver independent of wirelens, for its integration tests.

It decodes what the agent exports with the official protos only (PyPI's
`opentelemetry-proto`, its generated *_pb2 / *_pb2_grpc modules), served by
grpcio (OTLP/gRPC) and the standard library's http.server (OTLP/HTTP with
protobuf bodies, optionally gzip-compressed).

Every accepted export request is appended to --out as one JSON line:

    {"signal": "traces"|"metrics"|"profiles", "transport": "grpc"|"http",
     "request": MessageToDict(request, preserving_proto_field_name=True)}

With --raw FILE, the protobuf bytes of every request (logs too; an HTTP body
after its Content-Encoding is undone, a gRPC message as serialized) are
appended to FILE, so a test can search everything that was exported.

Requests refused because of --fail-first (optionally only those of one
signal, --fail-signal) are written too, with
"rejected": true, so a test can count retries. Logs are accepted and
discarded. On start it prints `READY grpc=<port> http=<port>` on stdout.

With --tls-cert/--tls-key/--tls-client-ca both servers speak TLS only and require a
client certificate signed by that CA (grpcio's ssl_server_credentials with
require_client_auth, the standard library's ssl with CERT_REQUIRED).
"""

import argparse
import gzip
import json
import os
import signal
import ssl
import sys
import threading
import zlib
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.profiles.v1development import (
    profiles_service_pb2,
    profiles_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

MAX_MESSAGE = 64 * 1024 * 1024

# signal -> (request type, response type)
SIGNALS = {
    "traces": (
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
    ),
    "metrics": (
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
    ),
    "logs": (
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse,
    ),
    "profiles": (
        profiles_service_pb2.ExportProfilesServiceRequest,
        profiles_service_pb2.ExportProfilesServiceResponse,
    ),
}



# The address both servers listen on (--bind).
BIND = "127.0.0.1"

def log(msg):
    print(f"otlp_receiver: {msg}", file=sys.stderr, flush=True)


class Sink:
    """Writes requests to the output file, and refuses the first N."""

    def __init__(self, path, fail_first, fail_signal, raw_path=None):
        self._lock = threading.Lock()
        self._out = open(path, "a", encoding="utf-8")
        self._raw = open(raw_path, "ab") if raw_path else None
        self._fail_left = fail_first
        self._fail_signal = fail_signal

    def accept(self, signal_name, transport, request):
        """Records the request; returns False if it must be refused."""
        with self._lock:
            refuse = self._fail_left > 0 and self._fail_signal in ("all", signal_name)
            if refuse:
                self._fail_left -= 1
            if self._raw is not None:
                self._raw.write(request.SerializeToString())
                self._raw.flush()
            line = {
                "signal": signal_name,
                "transport": transport,
                "request": MessageToDict(request, preserving_proto_field_name=True),
            }
            if refuse:
                line["rejected"] = True
            self._out.write(json.dumps(line, separators=(",", ":")) + "\n")
            self._out.flush()
            log(f"{transport} {signal_name}: {'rejected' if refuse else 'accepted'}")
            return not refuse

    def close(self):
        """Takes the lock for good (no line is half written after this) and closes the file."""
        self._lock.acquire()
        self._out.close()
        if self._raw is not None:
            self._raw.close()


def grpc_servicer(base, signal_name, sink):
    _, response_type = SIGNALS[signal_name]

    class Servicer(base):
        def Export(self, request, context):  # noqa: N802 (generated name)
            if not sink.accept(signal_name, "grpc", request):
                context.abort(grpc.StatusCode.UNAVAILABLE, "refused by --fail-first")
            return response_type()

    return Servicer()


def read(path):
    with open(path, "rb") as f:
        return f.read()


def start_grpc(port, sink, tls=None):
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.so_reuseport", 0),
        ],
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
        grpc_servicer(trace_service_pb2_grpc.TraceServiceServicer, "traces", sink), server
    )
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(
        grpc_servicer(metrics_service_pb2_grpc.MetricsServiceServicer, "metrics", sink), server
    )
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(
        grpc_servicer(logs_service_pb2_grpc.LogsServiceServicer, "logs", sink), server
    )
    profiles_service_pb2_grpc.add_ProfilesServiceServicer_to_server(
        grpc_servicer(profiles_service_pb2_grpc.ProfilesServiceServicer, "profiles", sink), server
    )
    if tls:
        credentials = grpc.ssl_server_credentials(
            [(read(tls.tls_key), read(tls.tls_cert))],
            root_certificates=read(tls.tls_client_ca),
            require_client_auth=True,
        )
        bound = server.add_secure_port(f"{BIND}:{port}", credentials)
    else:
        bound = server.add_insecure_port(f"{BIND}:{port}")
    if bound == 0:
        raise SystemExit(f"otlp_receiver: cannot bind gRPC port {port}")
    server.start()
    return server, bound


def read_chunked(rfile):
    body = bytearray()
    while True:
        size_line = rfile.readline(1024)
        if not size_line:
            raise ValueError("connection closed inside a chunked body")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            # Trailers, up to the empty line.
            while rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                pass
            return bytes(body)
        body += rfile.read(size)
        rfile.readline(8)  # CRLF after the chunk
        if len(body) > MAX_MESSAGE:
            raise ValueError("body too large")


def make_http_handler(sink):
    paths = {
        "/v1/traces": "traces",
        "/v1/metrics": "metrics",
        "/v1/logs": "logs",
        "/v1development/profiles": "profiles",
    }

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def reply(self, code, body=b"", content_type="application/x-protobuf"):
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):  # noqa: N802 (http.server's name)
            signal_name = paths.get(self.path.split("?", 1)[0])
            try:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    body = read_chunked(self.rfile)
                else:
                    length = int(self.headers.get("Content-Length", "0"))
                    if length > MAX_MESSAGE:
                        raise ValueError("body too large")
                    body = self.rfile.read(length)
            except ValueError as err:
                self.close_connection = True
                self.reply(400, str(err).encode(), "text/plain")
                return
            if signal_name is None:
                self.reply(404, b"unknown path", "text/plain")
                return
            content_type = self.headers.get("Content-Type", "").split(";", 1)[0].strip()
            if content_type != "application/x-protobuf":
                log(f"http {signal_name}: unsupported Content-Type {content_type!r}")
                self.reply(415, b"only application/x-protobuf", "text/plain")
                return
            encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
            try:
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                elif encoding not in ("", "identity"):
                    self.reply(415, b"unsupported Content-Encoding", "text/plain")
                    return
                request_type, response_type = SIGNALS[signal_name]
                request = request_type.FromString(body)
            except Exception as err:  # a body we cannot decode is the sender's bug
                log(f"http {signal_name}: cannot decode body: {err}")
                self.reply(400, f"cannot decode: {err}".encode(), "text/plain")
                return
            if not sink.accept(signal_name, "http", request):
                self.reply(503, b"refused by --fail-first", "text/plain")
                return
            self.reply(200, response_type().SerializeToString())

    return Handler


def start_http(port, sink, tls=None):
    server = ThreadingHTTPServer((BIND, port), make_http_handler(sink))
    server.daemon_threads = True
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.tls_cert, tls.tls_key)
        context.load_verify_locations(tls.tls_client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, name="otlp-http", daemon=True)
    thread.start()
    return server, server.server_address[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--grpc-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--http-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--out", required=True, help="file the requests are appended to")
    parser.add_argument(
        "--fail-first",
        type=int,
        default=0,
        metavar="N",
        help="answer the first N requests with UNAVAILABLE / HTTP 503",
    )
    parser.add_argument(
        "--fail-signal",
        choices=["all", "traces", "metrics", "logs", "profiles"],
        default="all",
        help="count and refuse only requests of this signal for --fail-first",
    )
    parser.add_argument("--raw", help="file the requests' protobuf bytes are appended to")
    parser.add_argument("--tls-cert", help="serve TLS with this certificate (PEM)")
    parser.add_argument("--tls-key", help="and this key (PEM)")
    parser.add_argument(
        "--tls-client-ca",
        help="require a client certificate signed by this CA (PEM); with --tls-cert",
    )
    parser.add_argument("--bind", default="127.0.0.1", help="address both servers listen on")
    args = parser.parse_args()
    global BIND
    BIND = args.bind

    tls = args if args.tls_cert else None
    if tls and not (args.tls_key and args.tls_client_ca):
        raise SystemExit("otlp_receiver: --tls-cert needs --tls-key and --tls-client-ca")
    sink = Sink(args.out, args.fail_first, args.fail_signal, args.raw)
    grpc_server, grpc_port = start_grpc(args.grpc_port, sink, tls)
    http_server, http_port = start_http(args.http_port, sink, tls)
    print(f"READY grpc={grpc_port} http={http_port}", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.1):
        pass
    # Every accepted request is already on disk; leave at once, but not in the middle of a line.
    sink.close()
    os._exit(0)

if __name__ == "__main__":
    main()
