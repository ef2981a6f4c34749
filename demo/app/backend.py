"""Demo backend: an HTTP API whose /api/orders/<item> reads a cache in Redis, records the order
in PostgreSQL, and publishes it on NATS. One item in ten is missing (404), one in twenty
fails (500), so the error panels have something to show."""

import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2
import redis

from nats_client import Nats

HOST = os.environ.get("HOST", "0.0.0.0")
PORT = int(os.environ.get("PORT", "8081"))
PG_DSN = os.environ.get("PG_DSN", "host=postgres dbname=shop user=shop password=shop")
REDIS_HOST = os.environ.get("REDIS_HOST", "redis")
REDIS_PORT = int(os.environ.get("REDIS_PORT", "6379"))
NATS_HOST = os.environ.get("NATS_HOST", "nats")
NATS_PORT = int(os.environ.get("NATS_PORT", "4222"))
NATS_USER = os.environ.get("NATS_USER")
NATS_PASS = os.environ.get("NATS_PASS")
ORDER = re.compile(r"^/api/orders/(\d+)$")

local = threading.local()


def connections():
    """Per-thread connections, made on first use and kept (the agent sees long-lived ones)."""
    if not hasattr(local, "pg"):
        local.pg = psycopg2.connect(PG_DSN)
        local.pg.autocommit = True
        local.redis = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
        local.nats = Nats(NATS_HOST, NATS_PORT, "backend", NATS_USER, NATS_PASS)
    return local.pg, local.redis, local.nats


def setup():
    for _ in range(60):
        try:
            pg, _, _ = connections()
            with pg.cursor() as cur:
                cur.execute(
                    "CREATE TABLE IF NOT EXISTS orders ("
                    " id serial PRIMARY KEY, item integer NOT NULL,"
                    " created timestamptz NOT NULL DEFAULT now())"
                )
            return
        except Exception as e:  # the database may still be starting
            print(f"waiting for the database: {e}")
            local.__dict__.clear()
            time.sleep(1)
    raise SystemExit("no database")


def order(item):
    if item % 10 == 0:
        return 404, {"error": "no such item"}
    if item % 20 == 7:
        return 500, {"error": "out of stock"}
    pg, cache, bus = connections()
    price = cache.get(f"price:{item}")
    if price is None:
        price = 100 + item
        cache.set(f"price:{item}", price, ex=30)
    with pg.cursor() as cur:
        cur.execute("INSERT INTO orders (item) VALUES (%s) RETURNING id", (item,))
        order_id = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM orders WHERE item = %s", (item,))
        count = cur.fetchone()[0]
    bus.publish("orders.created", json.dumps({"id": order_id, "item": item}).encode())
    return 200, {"id": order_id, "item": item, "price": int(price), "ordered": count}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        match = ORDER.match(self.path)
        if match:
            try:
                status, doc = order(int(match.group(1)))
            except Exception as e:
                local.__dict__.clear()
                status, doc = 500, {"error": str(e)}
        else:
            status, doc = 404, {"error": "not found"}
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    setup()
    ThreadingHTTPServer((HOST, PORT), Handler).serve_forever()
