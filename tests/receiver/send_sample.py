#!/usr/bin/env python3
"""Sends sample OTLP exports to a receiver, to test the receiver itself (tests/tests/harness.rs).

Usage: send_sample.py --grpc-port N --http-port N
Sends, in order: traces over gRPC (gzip), traces over HTTP (gzip), metrics over
gRPC, metrics over HTTP (identity). Prints one JSON line: the outcome of each
("ok" or the gRPC status / HTTP code), so a test can check --fail-first.
"""

import argparse
import gzip
import json
import urllib.error
import urllib.request

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2


def kv(key, **value):
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(**value))


def traces(name):
    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([kv("service.name", string_value="sample"), kv("process.pid", int_value=4242)])
    ss = rs.scope_spans.add()
    ss.scope.name = "send_sample"
    span = ss.spans.add(
        name=name,
        kind=trace_pb2.Span.SPAN_KIND_SERVER,
        trace_id=bytes(range(1, 17)),
        span_id=bytes(range(1, 9)),
        start_time_unix_nano=1_000,
        end_time_unix_nano=2_000,
    )
    span.attributes.extend([kv("http.response.status_code", int_value=500), kv("url.path", string_value="/x")])
    span.status.code = trace_pb2.Status.STATUS_CODE_ERROR
    return req


def metrics(count):
    req = metrics_service_pb2.ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.append(kv("service.name", string_value="sample"))
    m = rm.scope_metrics.add().metrics.add(name="http.server.request.duration", unit="s")
    m.histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
    dp = m.histogram.data_points.add(time_unix_nano=5_000, count=count, sum=0.5)
    dp.explicit_bounds.extend([0.1, 1.0])
    dp.bucket_counts.extend([count, 0, 0])
    dp.attributes.append(kv("http.response.status_code", int_value=200))
    return req


def via_grpc(call, req, **kw):
    try:
        call(req, timeout=10, **kw)
        return "ok"
    except grpc.RpcError as err:
        return err.code().name


def via_http(port, path, req, compress):
    body = req.SerializeToString()
    headers = {"Content-Type": "application/x-protobuf"}
    if compress:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            resp.read()
        return "ok"
    except urllib.error.HTTPError as err:
        return str(err.code)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    args = parser.parse_args()
    channel = grpc.insecure_channel(f"127.0.0.1:{args.grpc_port}")
    trace_stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    metrics_stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)
    outcomes = [
        via_grpc(trace_stub.Export, traces("grpc-span"), compression=grpc.Compression.Gzip),
        via_http(args.http_port, "/v1/traces", traces("http-span"), compress=True),
        via_grpc(metrics_stub.Export, metrics(3)),
        via_http(args.http_port, "/v1/metrics", metrics(7), compress=False),
    ]
    print(json.dumps(outcomes), flush=True)


if __name__ == "__main__":
    main()
