"""A container healthcheck for a reward worker: exit 0 while a worker on this host heartbeats.

    python -m reward_service.worker.healthcheck        (REDIS_URL names the Redis)
"""
from __future__ import annotations

import os
import socket
import sys
from datetime import datetime, timezone


def healthy(redis_url: str, hostname: str) -> tuple[bool, str]:
    from redis import Redis
    from redis.exceptions import RedisError
    from rq import Worker

    from reward_service.core.health import LIVE_S

    try:
        workers = [w for w in Worker.all(connection=Redis.from_url(redis_url, socket_timeout=3))
                   if w.hostname == hostname]
    except RedisError as exc:
        return False, f"redis at {redis_url} is unreachable: {exc}"
    now = datetime.now(timezone.utc)
    for worker in workers:
        beat = worker.last_heartbeat
        if beat and (now - beat.replace(tzinfo=beat.tzinfo or timezone.utc)).total_seconds() < LIVE_S:
            return True, f"worker {worker.name} heartbeats"
    return False, f"no worker on host {hostname} has heartbeat in the last {LIVE_S:g} s"


def main() -> int:
    from reward_service.config import DEFAULT_REDIS_URL

    ok, message = healthy(os.environ.get("REDIS_URL", DEFAULT_REDIS_URL), socket.gethostname())
    print(message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
