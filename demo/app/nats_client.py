"""The few NATS protocol lines the demo needs (CONNECT, PUB, SUB, PING), over a plain socket:
Debian packages no NATS client for Python."""

import json
import socket


class Nats:
    """One connection to a NATS server, used by one thread."""

    def __init__(self, host, port=4222, name="demo", user=None, password=None):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.file = self.sock.makefile("rb")
        info = self.file.readline()
        if not info.startswith(b"INFO "):
            raise ConnectionError(f"not a NATS server: {info!r}")
        options = {"verbose": False, "name": name}
        if user:
            options.update(user=user, **{"pass": password or ""})
        self._send(b"CONNECT " + json.dumps(options).encode() + b"\r\n")

    def _send(self, data):
        self.sock.sendall(data)

    def publish(self, subject, payload):
        """PUB, then PING/PONG so an error from the server is seen here."""
        self._send(b"PUB %s %d\r\n%s\r\nPING\r\n" % (subject.encode(), len(payload), payload))
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("NATS connection closed")
            if line.startswith(b"-ERR"):
                raise ConnectionError(line.decode(errors="replace").strip())
            if line.startswith(b"PONG"):
                return

    def subscribe(self, subject, queue=""):
        self._send(f"SUB {subject} {queue} 1\r\n".replace("  ", " ").encode())

    def messages(self):
        """Yields (subject, payload) of each MSG; answers the server's PINGs."""
        self.sock.settimeout(None)
        while True:
            line = self.file.readline()
            if not line:
                return
            if line.startswith(b"PING"):
                self._send(b"PONG\r\n")
            elif line.startswith(b"MSG "):
                parts = line.split()
                size = int(parts[-1])
                payload = self.file.read(size + 2)[:size]
                yield parts[1].decode(), payload

    def close(self):
        self.sock.close()
