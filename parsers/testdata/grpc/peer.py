#!/usr/bin/env python3
"""A gRPC server and client with Debian's python3-grpcio, no generated code: a generic
handler for the service `wirelens.Echo` whose messages are raw bytes.

usage: peer.py serve PORT          serve until killed
       peer.py call PORT CASE      one call on its own channel: unary, server_stream, bidi,
                                   not_found, client_stream
Methods: Unary (echo), ServerStream (3 replies), Bidi (one reply per request),
ClientStream (one reply after all requests), Missing (fails with NOT_FOUND, trailers only).
With GRPC_TLS_DIR set (holding cert.pem and key.pem, for CN localhost), both sides use TLS.
"""
import os
import sys
import time
from concurrent import futures

import grpc

SERVICE = "wirelens.Echo"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def unary(request, context):
    return b"echo:" + request


def server_stream(request, context):
    for i in range(3):
        yield b"part %d of " % i + request


def bidi(requests, context):
    for r in requests:
        yield b"re:" + r


def client_stream(requests, context):
    return b"got %d" % sum(1 for _ in requests)


def missing(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing: widget 42")


def serve(port):
    ident = lambda b: b
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, ident, ident),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream, ident, ident),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi, ident, ident),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream, ident, ident),
        "Missing": grpc.unary_unary_rpc_method_handler(missing, ident, ident),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    tls = os.environ.get("GRPC_TLS_DIR")
    if tls:
        with open(f"{tls}/key.pem", "rb") as k, open(f"{tls}/cert.pem", "rb") as c:
            creds = grpc.ssl_server_credentials([(k.read(), c.read())])
        server.add_secure_port(f"127.0.0.1:{port}", creds)
    else:
        server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("serving", port, flush=True)
    server.wait_for_termination()


def call(port, case):
    md = (("traceparent", TRACEPARENT),)
    tls = os.environ.get("GRPC_TLS_DIR")
    if tls:
        with open(f"{tls}/cert.pem", "rb") as c:
            creds = grpc.ssl_channel_credentials(c.read())
        opts = (("grpc.ssl_target_name_override", "localhost"),)
        channel = grpc.secure_channel(f"127.0.0.1:{port}", creds, options=opts)
    else:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    with channel as ch:
        path = lambda m: f"/{SERVICE}/{m}"
        if case == "unary":
            print(ch.unary_unary(path("Unary"))(b"hello", metadata=md))
        elif case == "server_stream":
            print(list(ch.unary_stream(path("ServerStream"))(b"news", metadata=md)))
        elif case == "bidi":
            print(list(ch.stream_stream(path("Bidi"))(iter([b"a", b"bb", b"ccc", b"dddd"]), metadata=md)))
        elif case == "client_stream":
            print(ch.stream_unary(path("ClientStream"))(iter([b"x", b"y"]), metadata=md))
        elif case == "not_found":
            try:
                ch.unary_unary(path("Missing"))(b"widget", metadata=md)
            except grpc.RpcError as e:
                print(e.code(), e.details())
        else:
            raise SystemExit(f"unknown case {case}")


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        call(int(sys.argv[2]), sys.argv[3])
