"""The measurements behind bench/capacity.py: each returns plain data (a phase's cached JSON).

Everything runs on this machine's own processes: a warm Ludii engine called directly, `rlpr up` with
real workers over a Redis of its own, redis-benchmark against that Redis.
"""
from __future__ import annotations

import os
import pathlib
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

from common import REPO, free_port, ludii_game_named, ludii_games

import capacity_model as model
from redis_rate import commandstats, delta, rate_over, redis_benchmark

RAW = pathlib.Path(REPO) / "runs" / "bench"
LIMIT_S = 60.0  # the per-game time limit of a trainer whose step is about a minute
LUDII_OPTIONS = {"playouts": 100, "max_turns": 500, "time_limit_s": LIMIT_S}
WARM_GAMES = ["Tic-Tac-Toe", "Hex", "Reversi"]
# Evaluations per JVM before anything is timed: the JIT compiles for hundreds of games (bench/ludii.py).
WARM_EVALUATIONS = 360
WARM_PASSES = 2
WARM_CORPUS_OPTIONS = {"playouts": 10, "max_turns": 500, "time_limit_s": 6.0}
BATCH, BATCHES = 12, 10
PERIOD_S = {1: 36.0, 2: 24.0}  # 70-85 % busy at the mean evaluation time (two share two cores)



def corpus() -> list[dict]:
    return ludii_games("test")


def warm_small() -> list[str]:
    """WARM_EVALUATIONS of three small games, run at LUDII_OPTIONS: the first half of every warm-up."""
    codes = [ludii_game_named(name) for name in WARM_GAMES]
    return [codes[k % len(codes)] for k in range(WARM_EVALUATIONS)]


def warm_corpus() -> list[str]:
    """WARM_PASSES passes over the corpus, run at WARM_CORPUS_OPTIONS (a tenth of the playouts)."""
    return [game["code"] for game in corpus()] * WARM_PASSES


def warm(evaluate) -> None:
    """What every JVM runs before anything is timed, raw engine or worker alike: `evaluate(code,
    options)` over warm_small(), then warm_corpus(). The JIT compiles for each family of games as it
    first meets it: a JVM warmed on three games alone ran the corpus's short games up to twice as
    slowly as one that had already seen the corpus."""
    for code in warm_small():
        evaluate(code, LUDII_OPTIONS)
    for code in warm_corpus():
        evaluate(code, WARM_CORPUS_OPTIONS)


def tree_rss(pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
    except psutil.Error:
        return 0


# -- evals ------------------------------------------------------------------------------------------
def measure_evals() -> dict:
    """The corpus's evaluation times twice: by one warm engine alone (a worker with cores to itself), and
    by two engines at once on this machine, each taking every other game (two workers sharing its two
    cores: a JVM uses 1.0-1.6 cores, its JIT compiling beside the game, so two slow each other down)."""
    from reward_contract.types import RewardItem
    from reward_service.rewards import get_reward

    games = corpus()
    alone = evaluate_all(1, games)
    paired = evaluate_all(2, games)
    cpu = {}
    for name, item in (("arithmetic", RewardItem("a", "", "23 + 4", {"previous": "23 + 1 + 3"})),
                       ("sentiment_vader", RewardItem("v", "", "What a wonderful, moving film; I loved it."))):
        spec = get_reward(name)
        options = spec.options({})
        times = []
        for _ in range(2000):
            started = time.perf_counter()
            spec.score(item, options)
            times.append(time.perf_counter() - started)
        cpu[name] = {"seconds": statistics.median(times), "chunk_size": spec.chunk_size}
    return {"ludii": alone, "ludii_paired": paired, "cpu": cpu, "limit_s": LIMIT_S}


def evaluate_all(engines: int, games: list[dict]) -> list[dict]:
    """Every game once, by `engines` warm engines at once: each game's own evaluation time, in corpus
    order. The games go in a shuffled order, as a trainer's batches draw them: in corpus order, runs of
    related games (chess variants, mancala variants) reuse what the JIT compiled for the one before, and
    short games measured that way ran faster than the same games met at random."""
    from reward_service.ludii.engine import LudiiEngine

    pool = [LudiiEngine(os.environ["LUDII_JAR"]) for _ in range(engines)]
    runs = [lambda code, e=e: e.evaluate(code, LUDII_OPTIONS["playouts"], LUDII_OPTIONS["max_turns"], 0, LIMIT_S)
            for e in pool]
    for engine in pool:
        engine.start()
    warmers = [threading.Thread(target=warm, args=(
        lambda code, o, e=e: e.evaluate(code, o["playouts"], o["max_turns"], 0, o["time_limit_s"]),)) for e in pool]
    rows: list[dict | None] = [None] * len(games)

    order = list(range(len(games)))
    random.Random(engines).shuffle(order)

    def share(k: int) -> None:
        for index in order[k::engines]:
            outcome = runs[k](games[index]["code"])
            rows[index] = {"game": games[index]["code"][7:60].split('"')[0], "seconds": outcome.seconds,
                           "stopped": outcome.stopped}
            print(f"{engines} engine(s) {index + 1:>4} {outcome.seconds:7.2f} s {outcome.stopped or 'ok':<10} "
                  f"{rows[index]['game']}", file=sys.stderr, flush=True)

    for threads in (warmers, [threading.Thread(target=share, args=(k,)) for k in range(engines)]):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for engine in pool:
        engine.close()
    return rows


# -- overhead ---------------------------------------------------------------------------------------
class Service:
    """Redis on a free port, `rlpr up` over it with N Ludii workers, and a gRPC client."""

    def __init__(self, workers: int):
        self.redis_port = free_port()
        self.rest, self.grpc = free_port(), free_port()
        RAW.mkdir(parents=True, exist_ok=True)
        self.log = (RAW / f"capacity-up-{workers}.log").open("w")
        self.redis = subprocess.Popen(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save",
                                       "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rlpr", "up", "--workers", f"ludii={workers}", "--no-cache", "--redis-url",
             f"redis://127.0.0.1:{self.redis_port}/0", "--rest-addr", f"127.0.0.1:{self.rest}", "--grpc-addr",
             f"127.0.0.1:{self.grpc}"], cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_ready(workers)
        from reward_contract.client import GrpcRewardClient

        self.client = GrpcRewardClient(f"127.0.0.1:{self.grpc}")

    def wait_ready(self, workers: int) -> None:
        import httpx

        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"http://127.0.0.1:{self.rest}/readyz?reward=ludii", timeout=2).json()
                if ready.get("workers", {}).get("ludii", 0) >= workers:
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"rlpr up was not ready; see {self.log.name}")

    def redis_client(self):
        from redis import Redis

        return Redis(port=self.redis_port)

    def pids(self) -> dict[str, int]:
        """The API's and each worker's pid, from `rlpr up`'s own lines."""
        text = pathlib.Path(self.log.name).read_text()
        return {name: int(pid) for name, pid in re.findall(r"started (\S+) \(pid (\d+)\)", text) if name != "redis"}

    def score(self, codes: list[str], options: dict = LUDII_OPTIONS):
        from reward_contract.types import RewardItem

        items = [RewardItem(str(k), "", code) for k, code in enumerate(codes)]
        return self.client.score("ludii", items, options, deadline_s=3600)

    def warm(self, workers: int) -> None:
        """Every worker's JVM warmed as a raw engine is (`warm`): the small games for each worker, then
        the corpus passes once per worker, as one batch each, so that every worker meets most games."""
        self.score(warm_small() * workers)
        corpus_codes = warm_corpus()
        for _ in range(workers):
            self.score(corpus_codes, WARM_CORPUS_OPTIONS)

    def close(self) -> None:
        self.client.close()
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(120)
        self.redis.terminate()
        self.redis.wait()
        self.log.close()


def measure_overhead() -> dict:
    from reward_service.ludii.engine import LudiiEngine
    code = ludii_game_named("Tic-Tac-Toe")
    engine = LudiiEngine(os.environ["LUDII_JAR"])
    engine.start()
    raw = lambda: engine.evaluate(code, LUDII_OPTIONS["playouts"], LUDII_OPTIONS["max_turns"], 0, LIMIT_S)
    warm(lambda code, o: engine.evaluate(code, o["playouts"], o["max_turns"], 0, o["time_limit_s"]))
    service = Service(1)
    try:
        service.warm(1)
        raw_s, via_s = [], []
        for _ in range(100):  # interleaved, so a load on the machine weighs on both alike
            started = time.perf_counter()
            raw()
            raw_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            service.score([code])
            via_s.append(time.perf_counter() - started)
    finally:
        service.close()
        engine.close()
    return {"raw_s": statistics.median(raw_s), "service_s": statistics.median(via_s),
            "overhead_s": statistics.median(via_s) - statistics.median(raw_s),
            "drain_job_s": {name: drain_job_seconds(name) for name in ("arithmetic", "sentiment_vader")}}


def drain_job_seconds(reward: str, jobs: int = 400) -> float:
    """A worker's own time per full job of a cheap reward: `jobs` chunks of chunk_size items queued at
    once, one `rlpr worker --burst` draining them; the span from the first job's start to the last one's
    end, per job. With thousands of items in flight this, not a lone request's latency, is a job's cost."""
    from redis import Redis
    from rq import Queue
    from rq.job import Job

    from reward_contract.types import RewardItem
    from reward_service.core.backends import JOB_FUNCTION
    from reward_service.core.request import WorkChunk
    from reward_service.rewards import get_reward

    spec = get_reward(reward)
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                               "no"], stdout=subprocess.DEVNULL)
    try:
        redis = Redis(port=port)
        while True:
            try:
                redis.ping()
                break
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.05)
        items = tuple(RewardItem(str(k), "", f"{k % 30} + 4" if reward == "arithmetic" else "a fine, moving film",
                                 {"previous": "1 + 2 + 4"} if reward == "arithmetic" else {})
                      for k in range(spec.chunk_size))
        options = spec.options({})
        datas = [Queue.prepare_data(JOB_FUNCTION, args=(WorkChunk(f"r{k}", reward, options, items, time.time() + 600,
                                                                  f"rlpr:reply:r{k}"),), timeout=60, ttl=600,
                                    result_ttl=600) for k in range(jobs)]
        with redis.pipeline() as pipe:
            ids = [job.id for job in Queue(spec.queue, connection=redis).enqueue_many(datas, pipeline=pipe)]
            pipe.execute()
        subprocess.run([sys.executable, "-m", "rlpr", "worker", "--queues", spec.queue, "--burst", "--redis-url",
                        f"redis://127.0.0.1:{port}/0"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        done = [job for job in Job.fetch_many(ids, connection=redis) if job is not None and job.ended_at]
        if len(done) != jobs:
            raise RuntimeError(f"only {len(done)} of {jobs} {reward} jobs ended")
        return (max(j.ended_at for j in done) - min(j.started_at for j in done)).total_seconds() / (jobs - 1)
    finally:
        server.terminate()
        server.wait()


# -- redis ------------------------------------------------------------------------------------------
def measure_redis() -> dict:
    service = Service(2)
    try:
        redis = service.redis_client()
        service.warm(2)
        time.sleep(3)
        idle = rate_over(redis, 20)  # two idle workers and the API's monitor
        code = ludii_game_named("Tic-Tac-Toe")
        before = commandstats(redis)
        jobs = 200
        for _ in range(jobs // 10):
            service.score([code] * 10)
        per_job = {k: v / jobs for k, v in delta(before, commandstats(redis)).items()}
        busy_code = ludii_game_named("Backgammon")
        thread = threading.Thread(target=service.score, args=([busy_code] * 2,))
        thread.start()
        time.sleep(3)
        busy = rate_over(redis, 10)  # two busy workers (one long game each) and the monitor
        thread.join()
        capacity = redis_benchmark(service.redis_port, per_job)
    finally:
        service.close()
    return {"per_job": per_job, "commands_per_job": sum(per_job.values()), "idle_per_s": idle,
            "idle_total_per_s": sum(idle.values()), "busy_per_s": busy, "busy_total_per_s": sum(busy.values()),
            **capacity}


# -- validate ---------------------------------------------------------------------------------------
def drawn_batches(workers: int, evals: list[dict]) -> list[list[int]]:
    rng = random.Random(workers)
    return [[rng.randrange(len(evals)) for _ in range(BATCH)] for _ in range(BATCHES)]


def measure_validation(workers: int, evals: list[dict], overhead_s: float) -> dict:
    """`evals`: the evaluation times measured with as many engines at once as there are workers here."""
    games = corpus()
    batches = drawn_batches(workers, evals)
    workload = model.Workload(BATCH, PERIOD_S[workers], BATCHES)
    predicted = model.simulate(workers, workload, [[evals[i]["seconds"] for i in b] for b in batches], overhead_s)
    print(f"predicted, {workers} worker(s): batch latency p50 {predicted.latency(50):.1f} s, "
          f"p95 {predicted.latency(95):.1f} s", file=sys.stderr, flush=True)
    service = Service(workers)
    latencies: list[float | None] = [None] * BATCHES
    peaks: dict[str, int] = {}
    try:
        service.warm(workers)
        pids = service.pids()
        sampling = threading.Event()

        def sample():
            while not sampling.wait(0.5):
                for name, pid in pids.items():
                    peaks[name] = max(peaks.get(name, 0), tree_rss(pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        def send(index: int) -> None:
            started = time.perf_counter()
            results = service.score([games[i]["code"] for i in batches[index]])
            latencies[index] = time.perf_counter() - started
            assert all(r.status.value in ("ok", "time_limit") for r in results), [r.error for r in results]

        senders = []
        origin = time.perf_counter()
        for index in range(BATCHES):
            time.sleep(max(0.0, origin + index * PERIOD_S[workers] - time.perf_counter()))
            senders.append(threading.Thread(target=send, args=(index,)))
            senders[-1].start()
        for sender in senders:
            sender.join()
        sampling.set()
    finally:
        service.close()
    measured = [x for x in latencies if x is not None]
    return {"workers": workers, "period_s": PERIOD_S[workers], "batch": BATCH, "batches": batches,
            "predicted_s": list(predicted.batch_latency_s), "measured_s": measured,
            "predicted_p50": predicted.latency(50), "predicted_p95": predicted.latency(95),
            "measured_p50": model.percentile(measured, 50), "measured_p95": model.percentile(measured, 95),
            "peak_rss_bytes": peaks}


