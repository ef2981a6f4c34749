"""Demo frontend: an HTTP server (the standard library's) that answers /order by calling the
backend over HTTP, by its service name (a DNS lookup each time). Other paths give 404."""

import json
import os
import random
import socket
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BACKEND = os.environ.get("BACKEND_URL", "http://backend:8081")
BACKEND_HOST = urllib.parse.urlsplit(BACKEND).hostname
HOST = os.environ.get("HOST", "0.0.0.0")
PORT = int(os.environ.get("PORT", "8080"))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path.startswith("/order"):
            item = random.randint(1, 20)
            # A lookup of its own, so the DNS panels show the frontend resolving its peer.
            socket.getaddrinfo(BACKEND_HOST, None, type=socket.SOCK_STREAM)
            try:
                with urllib.request.urlopen(f"{BACKEND}/api/orders/{item}", timeout=5) as r:
                    status, body = r.status, r.read()
            except urllib.error.HTTPError as e:
                status, body = 502, json.dumps({"backend": e.code}).encode()
            except OSError as e:
                status, body = 503, json.dumps({"error": str(e)}).encode()
        elif self.path == "/health":
            status, body = 200, b"ok"
        else:
            status, body = 404, b"not found"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer((HOST, PORT), Handler).serve_forever()
