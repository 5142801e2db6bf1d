"""`rlpr serve`: the gRPC and REST fronts on one event loop over one RewardService.

Waiting on rewards is asynchronous in both fronts, so health and cheap rewards answer in
milliseconds however many slow requests are in flight. SIGTERM, SIGINT and SIGHUP stop
both fronts gracefully.
"""
from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
import time

import uvicorn

from reward_contract.errors import ConfigError
from reward_contract.settings import auth_token
from reward_service.config import ServeConfig, split_addr
from reward_service.core.service import RewardService
from reward_service.fronts.grpc_server import HealthReporter, create_server
from reward_service.fronts.rest import create_app

GRACE_S = 3.0


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handlers: `Fronts` owns the process's signals."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def bind_tcp(addr: str, what: str) -> socket.socket:
    """A listening socket on HOST:PORT, or a ConfigError that says the address is taken."""
    host, port = split_addr(addr, what)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio turns Nagle off only on sockets that say they are TCP, and with
    # Nagle on, every keep-alive response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT only; never SO_REUSEPORT
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"{what} {addr} cannot be used ({exc.strerror}); is another server running there?") from None
    sock.listen(2048)
    return sock


class Fronts:
    """Both fronts of one service. The REST socket is bound at construction, the gRPC port when
    `run` starts (grpc.aio binds within its event loop); ports 0 pick free ones."""

    def __init__(self, service: RewardService, grpc_addr: str, rest_addr: str, token: str = "",
                 max_request_bytes: int = 32 << 20):
        self.service = service
        self.grpc_addr = grpc_addr
        self.token = token
        self.max_request_bytes = max_request_bytes
        self.health = HealthReporter(service)
        self.rest_socket = bind_tcp(rest_addr, "--rest-addr")
        self.rest_port = self.rest_socket.getsockname()[1]
        self.grpc_port: int | None = None
        app = create_app(service, token, max_request_bytes)
        self.uvicorn = _Uvicorn(uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=5))
        self.ready = threading.Event()
        self.stopping: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._thread_error: BaseException | None = None

    async def run(self, on_ready=None) -> None:
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        try:
            grpc_server, self.grpc_port = create_server(self.service, self.grpc_addr, self.token,
                                                        self.max_request_bytes, self.health)
        except OSError as exc:
            self.rest_socket.close()
            raise ConfigError(f"--grpc-addr: {exc}") from None
        await grpc_server.start()
        await self.health.update(self.service.health)
        monitor = self.service.monitor
        watch = asyncio.create_task(monitor.run(self.health.update)) if monitor else None
        rest = asyncio.create_task(self.uvicorn.serve(sockets=[self.rest_socket]))
        stop = asyncio.create_task(self.stopping.wait())
        try:
            while not self.uvicorn.started and not rest.done():
                await asyncio.sleep(0.01)
            self.ready.set()
            if on_ready is not None:
                on_ready(self)
            await asyncio.wait({rest, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.uvicorn.should_exit = True
            await asyncio.gather(rest, return_exceptions=True)
            await grpc_server.stop(GRACE_S)
            for task in (watch, stop):
                if task:
                    task.cancel()

    def stop(self) -> None:
        """Thread-safe: ask `run` to finish."""
        if self.loop and self.stopping:
            self.loop.call_soon_threadsafe(self.stopping.set)

    # -- for tests and embedding: run in a background thread ------------------------------------
    def start_in_thread(self, timeout_s: float = 10.0) -> "Fronts":
        def target():
            try:
                asyncio.run(self.run())
            except BaseException as exc:  # noqa: BLE001 - handed to the thread that waits below
                self._thread_error = exc

        self._thread = threading.Thread(target=target, name="rlpr-fronts", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.ready.wait(0.01):
            if self._thread_error is not None:
                raise self._thread_error
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fronts did not start")
        return self

    def join(self, timeout_s: float = 15.0) -> None:
        self.stop()
        if self._thread:
            self._thread.join(timeout_s)


def serve(config: ServeConfig) -> int:
    from reward_service.rewards import sentiment_classifier

    sentiment_classifier.lock_down()  # clients name only models the operator allowed
    service = RewardService.from_config(config)
    fronts = Fronts(service, config.grpc_addr, config.rest_addr, auth_token(config.auth_token),
                    config.max_request_bytes)

    def announce(running: Fronts) -> None:
        print(f"rlpr serve: gRPC on {config.grpc_addr.rpartition(':')[0]}:{running.grpc_port}, REST on "
              f"http://{config.rest_addr.rpartition(':')[0]}:{running.rest_port} (docs at /docs), "
              f"backend={config.backend}", flush=True)

    async def main():
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, fronts.stop)
        await fronts.run(announce)

    asyncio.run(main())
    return 0
