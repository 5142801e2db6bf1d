"""The RQ job run by reward workers: score one chunk and push the results to the request's reply list."""
from __future__ import annotations

import pickle
import time

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import get_current_job

from reward_service.core.backends import cancel_key
from reward_service.core.request import WorkChunk
from reward_service.core.scoring import score_items
from reward_service.rewards import get_reward
from reward_service.worker import stopping

REPLY_TTL_S = 600  # a reply list outlives any request deadline, then Redis drops it
CANCEL_CHECK_S = 0.25  # how often a running chunk asks whether its request was withdrawn
REDIS_RETRY_S = 0.5


def score_chunk(chunk: WorkChunk) -> int:
    connection = get_current_job().connection
    cancelled = _CancelProbe(connection, chunk.request_id)
    results = score_items(get_reward(chunk.reward), chunk.options, chunk.items, chunk.deadline, cancelled)
    if cancelled.by_stop:  # the worker is stopping and this chunk ran out of its grace: no reply, put it back
        raise stopping.JobPutBack(f"the worker stopped before this chunk's {len(results)} items were scored")
    payload = pickle.dumps((get_current_job().id, results), protocol=pickle.HIGHEST_PROTOCOL)
    _push_reply(connection, chunk, payload)
    return len(results)


class _CancelProbe:
    """A cheap `cancelled()`: true once the request was withdrawn (asked of Redis at most every
    CANCEL_CHECK_S) or once the stopping worker's grace has passed (`by_stop`, asked of no one)."""

    def __init__(self, connection, request_id: str):
        self.connection = connection
        self.key = cancel_key(request_id)
        # The first question waits CANCEL_CHECK_S too: a chunk that ends sooner costs Redis nothing.
        self.checked = time.monotonic()
        self.withdrawn = False
        self.by_stop = False

    def __call__(self) -> bool:
        if self.withdrawn or self.by_stop:
            return True
        if stopping.overdue():
            self.by_stop = True
            return True
        now = time.monotonic()
        if now - self.checked >= CANCEL_CHECK_S:
            self.checked = now
            try:
                self.withdrawn = bool(self.connection.exists(self.key))
            except (RedisConnectionError, RedisTimeoutError):
                pass  # Redis is away: keep scoring; the reply push below waits for it
        return self.withdrawn


def _push_reply(connection, chunk: WorkChunk, payload: bytes) -> None:
    """Scored results are not thrown away when Redis blinks: retry until it answers, for as long
    as anyone could still read the reply."""
    give_up = max(chunk.deadline, time.time()) + REPLY_TTL_S
    while True:
        try:
            with connection.pipeline() as pipe:
                pipe.rpush(chunk.reply_key, payload)
                pipe.expire(chunk.reply_key, REPLY_TTL_S)
                pipe.execute()
            return
        except (RedisConnectionError, RedisTimeoutError):
            if time.time() > give_up:
                raise
            time.sleep(REDIS_RETRY_S)
