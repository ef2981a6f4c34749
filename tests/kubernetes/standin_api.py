"""A stand-in Kubernetes API server for tests/tests/kubernetes*.rs: no API server installs here.

Serves recorded real API objects (agent/testdata/kubernetes/) the way the API server does:
the pod list (GET /api/v1/pods: node n1's pods from pods.json, plus pods-other-nodes.json
for the cluster), filtered by the fieldSelector terms the agent sends (spec.nodeName,
status.phase; = and !=), the Service list (GET /api/v1/services), watch streams of those lists
(?watch=true, chunked, one JSON event per line), and GETs of a ReplicaSet and a Job. Each kind
of watch (this node's pods, the cluster's pods, Services) follows the same script:
  1st watch: an ERROR event carrying a 410 Gone Status (the resource version expired),
  2nd watch: one MODIFIED event, then the connection is dropped mid-stream (no last chunk),
  3rd and later: held open with nothing to say.
Every request's path and query is appended to the log file, one per line.

Usage: standin_api.py PORT TESTDATA_DIR LOG_FILE
"""

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PORT = int(sys.argv[1])
DATA = sys.argv[2]
LOG = sys.argv[3]
LOCK = threading.Lock()
WATCHES = {}


def load(name):
    with open(os.path.join(DATA, name)) as f:
        return json.load(f)


PODS = load("pods.json")
CLUSTER_PODS = dict(PODS, items=PODS["items"] + load("pods-other-nodes.json")["items"])
SERVICES = load("services.json")


def field(obj, path):
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def select(listing, selector):
    """The list with only the items every `a=b` / `a!=b` term of the field selector keeps."""
    items = listing["items"]
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            items = [i for i in items if field(i, key) != value]
        else:
            key, value = term.split("=", 1)
            items = [i for i in items if field(i, key) == value]
    return dict(listing, items=items)
OBJECTS = {
    "/apis/apps/v1/namespaces/shop/replicasets/web-7d9f8c": load("replicaset-web.json"),
    "/apis/batch/v1/namespaces/batch/jobs/report-29412345": load("job-report.json"),
}


def not_found(path):
    return {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": f"{path} not found", "reason": "NotFound", "code": 404,
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def chunk(self, event):
        data = (json.dumps(event) + "\n").encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_GET(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        with LOCK:
            with open(LOG, "a") as f:
                f.write(self.path + "\n")
        fields = query.get("fieldSelector", [""])[0]
        if url.path == "/api/v1/pods":
            kind = "node-pods" if "spec.nodeName" in fields else "cluster-pods"
            listing = select(CLUSTER_PODS, fields)
        elif url.path == "/api/v1/services":
            kind, listing = "services", SERVICES
        else:
            kind = listing = None
        if listing is not None and query.get("watch") == ["true"]:
            with LOCK:
                WATCHES[kind] = WATCHES.get(kind, 0) + 1
                n = WATCHES[kind]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if n == 1:
                self.chunk({"type": "ERROR", "object": {
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "too old resource version: 48320 (48400)",
                    "reason": "Expired", "code": 410}})
                self.wfile.write(b"0\r\n\r\n")
            elif n == 2:
                obj = json.loads(json.dumps(listing["items"][0]))
                obj["metadata"]["resourceVersion"] = "48401"
                self.chunk({"type": "MODIFIED", "object": obj})
                # Dropped: no last chunk, the connection just closes.
                self.close_connection = True
            else:
                while True:
                    time.sleep(1)
            return
        if listing is not None:
            self.send_json(200, listing)
            return
        if url.path in OBJECTS:
            self.send_json(200, OBJECTS[url.path])
            return
        self.send_json(404, not_found(url.path))


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
server.daemon_threads = True
print("listening", PORT, flush=True)
server.serve_forever()
