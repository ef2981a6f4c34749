"""Demo worker: consumes the backend's orders from NATS and counts them in Redis."""

import json
import os
import time

import redis

from nats_client import Nats

NATS_HOST = os.environ.get("NATS_HOST", "nats")
NATS_PORT = int(os.environ.get("NATS_PORT", "4222"))
NATS_USER = os.environ.get("NATS_USER")
NATS_PASS = os.environ.get("NATS_PASS")
REDIS_HOST = os.environ.get("REDIS_HOST", "redis")
REDIS_PORT = int(os.environ.get("REDIS_PORT", "6379"))


def run():
    bus = Nats(NATS_HOST, NATS_PORT, "worker", NATS_USER, NATS_PASS)
    bus.subscribe("orders.>", "workers")
    cache = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    for _subject, payload in bus.messages():
        order = json.loads(payload)
        cache.incr(f"orders:item:{order['item']}")


if __name__ == "__main__":
    while True:
        try:
            run()
        except OSError as e:  # NATS or Redis not up yet, or restarted
            print(f"worker: {e}; retrying")
        time.sleep(1)
