"""One Redis's command rates: what its clients send (INFO commandstats) and what it can serve
(redis-benchmark), for bench/capacity.py's ceiling."""
from __future__ import annotations

import re
import subprocess
import time


def commandstats(redis) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): int(stats["calls"]) for name, stats in redis.info("commandstats").items()}


def delta(before: dict, after: dict) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) - before.get(k, 0) > 0}


def rate_over(redis, seconds: float) -> dict[str, float]:
    before = commandstats(redis)
    time.sleep(seconds)
    return {k: v / seconds for k, v in delta(before, commandstats(redis)).items()}


def redis_benchmark(port: int, mix: dict[str, float]) -> dict:
    """One Redis's rate for each command of the mix (redis-benchmark, 50 clients, no pipelining), and
    for the mix as a whole: the harmonic mean weighted by the mix."""
    tests = {"get": "get", "set": "set", "lpush": "lpush", "rpush": "rpush", "lpop": "lpop", "rpop": "rpop",
             "sadd": "sadd", "hset": "hset", "zadd": "zadd", "mset": "mset", "incr": "incr", "lrange": "lrange_100"}
    measured = {}
    out = subprocess.run(["redis-benchmark", "-p", str(port), "-q", "-n", "200000", "-c", "50", "-t",
                          ",".join(sorted({t.split("_")[0] for t in tests.values()}))],
                         capture_output=True, text=True, check=True).stdout
    for line in out.replace("\r", "\n").splitlines():
        match = re.match(r"(\S+?)(?: \(.*\))?: ([\d.]+) requests per second", line.strip())
        if match:
            measured[match.group(1).lower()] = float(match.group(2))
    # Commands redis-benchmark has no test for are costed like the cheapest test of their kind: a
    # key read or write (GET/SET), a list push or pop, a hash or sorted-set write.
    kind = {"hget": "get", "hgetall": "lrange_100", "hmget": "get", "exists": "get", "ttl": "get", "type": "get",
            "expire": "set", "pexpire": "set", "persist": "set", "del": "set", "sismember": "get", "smembers": "get",
            "srem": "sadd", "zrem": "zadd", "zcard": "get", "zrangebyscore": "lrange_100",
            "zremrangebyscore": "zadd", "lrem": "lpush", "lmove": "rpop", "blmove": "rpop", "blpop": "lpop",
            "llen": "get", "lpos": "get", "hdel": "hset", "hincrby": "hset", "hincrbyfloat": "hset", "hexists": "get",
            "multi": "get", "exec": "get", "ping": "get", "info": "lrange_100", "client|setname": "set",
            "publish": "set", "subscribe": "set", "unsubscribe": "set", "client|list": "lrange_100",
            "incrby": "incr", "zrange": "lrange_100", "scan": "lrange_100", "script": "set", "evalsha": "hset"}
    per_command, missing = {}, []
    for command in mix:
        test = tests.get(command) or kind.get(command)
        if test and test.split("_")[0] in measured or test in measured:
            per_command[command] = measured.get(test, measured.get(test.split("_")[0]))
        else:
            missing.append(command)
            per_command[command] = measured["get"]
    weight = sum(mix.values())
    capacity = weight / sum(share / per_command[c] for c, share in mix.items())
    return {"per_test": measured, "mix_capacity_per_s": capacity, "costed_as_get": missing}
