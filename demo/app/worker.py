"""Demo worker: consumes the backend's orders from NATS and counts them in Redis."""

import json
import os
import time

import redis

from nats_client import Nats

NATS_HOST = os.environ.get("NATS_HOST", "nats")
REDIS_HOST = os.environ.get("REDIS_HOST", "redis")


def run():
    bus = Nats(NATS_HOST, name="worker")
    bus.subscribe("orders.>", "workers")
    cache = redis.Redis(host=REDIS_HOST, port=6379)
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
