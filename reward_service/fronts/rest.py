"""REST front on FastAPI. Like the gRPC servicer, it only translates.

Routers carry the endpoints; `RequestGate` checks the token, before any body is read, on every
path but health and the docs' static files. A request body is refused before parsing when over
the size limit, a client that disconnects withdraws its work, and
every error, FastAPI's own included, answers with one envelope:
`{"error": {"code": <gRPC code name>, "message": ...}}`.
"""
from __future__ import annotations

import asyncio
import hmac
from typing import Awaitable, TypeVar, Union

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from reward_contract.errors import QUOTED_NAMES, Cancelled, InvalidArgument, RlprError, quoted
from reward_contract.types import RewardItem, RewardTerm, ScoredItem
from reward_service.core.memory import MemoryReleaser
from reward_service.core.service import RewardService, internal_error

T = TypeVar("T")
DISCONNECT_POLL_S = 0.5
UNAUTHENTICATED_MESSAGE = "missing or wrong 'Authorization: Bearer <token>' header"
_HTTP_TO_CODE = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND", 405: "UNIMPLEMENTED",
                 413: "RESOURCE_EXHAUSTED", 415: "INVALID_ARGUMENT", 422: "INVALID_ARGUMENT"}
Scalar = Union[StrictBool, StrictInt, StrictFloat, StrictStr]
ReferenceValue = Union[StrictStr, StrictInt, StrictFloat]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ItemIn(_Strict):
    id: str = Field(min_length=1, description="Unique within the batch; echoed in the result.")
    prompt: str = ""
    completion: str
    reference: dict[str, ReferenceValue] = Field(default_factory=dict, description="Task data, e.g. target, previous.")

    def to_item(self) -> RewardItem:
        return RewardItem(self.id, self.prompt, self.completion, {k: str(v) for k, v in self.reference.items()})


class TermIn(_Strict):
    reward: str = Field(description="A reward kind from GET /v1/rewards.")
    weight: float = Field(default=1.0, description="The term's weight in the item's reward.")
    options: dict[str, Scalar] = Field(default_factory=dict, description="This reward's options.")

    def to_term(self) -> RewardTerm:
        return RewardTerm(self.reward, self.weight, self.options)


class _ScoreIn(_Strict):
    reward: str = Field(default="", description="A reward kind from GET /v1/rewards; empty when `terms` is set.")
    terms: list[TermIn] = Field(default_factory=list, description=(
        "A composite reward instead of `reward`: each term scored on its own, the item's reward their weighted "
        "sum, each term's reward in the result's `rewards`."))
    options: dict[str, Scalar] = Field(default_factory=dict, description="JSON scalars typed by the reward's options.")
    # The bound only keeps the number a float can hold; the server's own maximum is checked with the rest.
    deadline_ms: int = Field(default=0, ge=0, le=10**12, description="0 uses the server default.")
    no_cache: bool = False


class ScoreOneIn(_ScoreIn):
    item: ItemIn


class ScoreBatchIn(_ScoreIn):
    items: list[ItemIn]


class ResultOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    reward: float
    components: dict[str, float]
    status: str = Field(description="ok, invalid, error, timeout, lost or time_limit; only ok carries a reward.")
    error: str
    cached: bool
    detail: str
    rewards: dict[str, float] = Field(description="A composite request's reward of each term; empty otherwise.")


class BatchOut(BaseModel):
    results: list[ResultOut]


class RewardKindOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    description: str
    queue: str
    options: dict[str, str]
    label_field: str


OPEN_PATHS = ("/livez", "/readyz", "/healthz")  # health, for probes: no token
OPEN_PREFIX = "/docs/assets/"  # the docs page's scripts and styles (the page itself needs the token)


class RequestGate:
    """Before any body is read: refuses a request without the token (401), then bodies over
    `max_bytes` (413), whether or not Content-Length is sent. A client without the token costs the
    server its headers only, not up to `max_bytes` of body."""

    def __init__(self, app, max_bytes: int, memory: MemoryReleaser, token: str = ""):
        self.app = app
        self.max_bytes = max_bytes
        self.memory = memory
        self.expected = f"Bearer {token}".encode() if token else b""

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        path = scope["path"]
        if self.expected and path not in OPEN_PATHS and not path.startswith(OPEN_PREFIX) and \
                not hmac.compare_digest(headers.get(b"authorization", b""), self.expected):
            return await _error("UNAUTHENTICATED", UNAUTHENTICATED_MESSAGE, 401)({"type": "http"}, None, send)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._reject(send)
        # Read the whole body first (it is bounded by the limit) so an oversized chunked
        # body is refused here rather than surfacing as a parse error inside FastAPI.
        messages, received = [], 0
        while True:
            message = await receive()
            messages.append(message)
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                return await self._reject(send)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break

        async def replay():
            return messages.pop(0) if messages else await receive()

        del message
        async with self.memory.request(received):
            await self.app(scope, replay, send)

    async def _reject(self, send):
        response = _error("RESOURCE_EXHAUSTED", f"body over {self.max_bytes} bytes", 413)
        await response({"type": "http"}, None, send)


def _body_hint(request: Request, errors: list[dict]) -> str:
    """What a new user most likely did wrong, in words, before pydantic's own."""
    types = {(tuple(e.get("loc", ())), e.get("type", "")) for e in errors}
    content_type = request.headers.get("content-type", "")
    if any(kind == "json_invalid" for _, kind in types):
        return "the body is not valid JSON; send one JSON object, e.g. " + _EXAMPLE_BODY
    if (("body",), "model_attributes_type") in types:
        if "json" not in content_type.lower():
            return (f"the body must be JSON sent with 'Content-Type: application/json' (got "
                    f"{quoted(content_type) if content_type else 'no content type'})")
        return "the body must be a JSON object, e.g. " + _EXAMPLE_BODY
    batch = request.url.path.endswith(":batch")
    if not batch and (("body", "items"), "extra_forbidden") in types:
        return "/v1/score takes one `item`; send a list of `items` to /v1/score:batch"
    if batch and (("body", "item"), "extra_forbidden") in types:
        return "/v1/score:batch takes a list of `items`; send one `item` to /v1/score"
    return ""


_EXAMPLE_BODY = '{"reward": "sentiment_vader", "item": {"id": "1", "completion": "a fine film"}}'


def _error(code: str, message: str, status: int, headers: dict | None = None, **extra) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}, **extra}, status, headers=headers)


async def until_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it (and so withdrawing its queued jobs) if the client goes away."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if done:
                return task.result()
            if await request.is_disconnected():
                task.cancel()
                raise Cancelled("the client went away; its work was withdrawn")
    finally:
        if not task.done():
            task.cancel()


def scoring_router(service: RewardService) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["scoring"])

    async def score(request: Request, body: _ScoreIn, items: list[ItemIn]) -> list[ScoredItem]:
        if body.terms and body.reward:
            raise InvalidArgument("set either `reward` or `terms`, not both")
        if not body.terms and not body.reward:
            raise InvalidArgument("name a `reward` (GET /v1/rewards lists them), or send `terms`")
        reward = [t.to_term() for t in body.terms] if body.terms else body.reward
        resolved = service.resolve_choice(reward, [i.to_item() for i in items], body.options,
                                          body.deadline_ms / 1000 or None, not body.no_cache, "rest")
        return await until_disconnected(request, service.score(resolved))

    @router.post("/score", response_model=ResultOut)
    async def score_one(body: ScoreOneIn, request: Request) -> ResultOut:
        """Score one completion."""
        return ResultOut.model_validate((await score(request, body, [body.item]))[0])

    @router.post("/score:batch", response_model=BatchOut)
    async def score_batch(body: ScoreBatchIn, request: Request) -> BatchOut:
        """Score a batch; one bad item fails only its own result."""
        return BatchOut(results=[ResultOut.model_validate(r) for r in await score(request, body, body.items)])

    @router.get("/rewards", response_model=list[RewardKindOut])
    async def rewards() -> list[RewardKindOut]:
        """The reward kinds, their options and the reference field a bare label fills."""
        return [RewardKindOut.model_validate(kind) for kind in service.kinds()]

    return router


def operations_router(service: RewardService) -> APIRouter:
    """Health (open, for probes), and metrics and queue loads (behind the token like the scoring endpoints)."""
    router = APIRouter(tags=["operations"])

    @router.get("/livez")
    async def livez() -> JSONResponse:
        """Liveness: the process answers. Open without a token."""
        return JSONResponse({"status": "alive"})

    @router.get("/readyz")
    async def readyz(reward: str = "") -> JSONResponse:
        """Readiness: Redis answers and a live worker serves some queue (or, with `?reward=`, that
        reward's queue). Open without a token."""
        health = service.health
        queue = service.resolve_spec(reward).queue if reward else ""
        ready = health.serves(queue) if reward else health.ready
        if health.everything:
            body = {"status": "ready", "redis": "not used", "workers": "in-process"}
        else:
            body = {"status": "ready" if ready else "not ready", "redis": "ok" if health.redis else "unreachable",
                    "workers": dict(health.workers)}
        if reward:
            body |= {"reward": reward, "served": ready}
            if not ready:
                body["reason"] = (f"reward {reward!r} is not served: " + (
                    "redis is unreachable" if not health.redis else f"no live worker serves its queue {queue!r}"))
        return JSONResponse(body, 200 if ready else 503)

    router.add_api_route("/healthz", readyz, methods=["GET"], summary="Readiness (alias of /readyz)")

    @router.get("/metrics")
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")

    @router.get("/queues")
    async def queues(names: str = "") -> JSONResponse:
        """The work on the named queues (comma-separated; all when none are named): jobs queued and jobs
        running, summed, and by queue with the live workers of each. An autoscaler sizes workers by it (KEDA's
        metrics-api trigger reads `running`, deploy/kubernetes)."""
        wanted = [name.strip() for name in names.split(",") if name.strip()] or service.queue_names()
        loads = await service.queue_loads(wanted)
        workers = service.health.workers
        by_queue = {name: {"queued": loads[name].queued, "running": loads[name].running,
                           "workers": workers.get(name, 0)} for name in wanted}
        totals = {key: sum(q[key] for q in by_queue.values()) for key in ("queued", "running")}
        return JSONResponse({**totals, "queues": by_queue})

    return router


def create_app(service: RewardService, token: str = "", max_request_bytes: int = 32 << 20) -> FastAPI:
    from swagger_ui_bundle import swagger_ui_path

    # The docs and the schema are guarded like every endpoint but health, and served from
    # this process (no CDN): /docs works on a machine without internet access.
    app = FastAPI(title="rlpr reward service", version="1", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(RequestGate, max_bytes=max_request_bytes, memory=service.memory, token=token)
    app.include_router(scoring_router(service))
    from reward_service.fronts.openrlhf import openrlhf_router

    app.include_router(openrlhf_router(service))
    app.include_router(operations_router(service))
    app.mount("/docs/assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title="rlpr reward service",
                                   swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs/assets/swagger-ui.css", swagger_favicon_url="")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        # The default handler echoes the input back, which fails on NaN; send location and message only.
        # Bounded like every error: at most QUOTED_NAMES problems, each location cut (keys are the client's).
        errors = exc.errors()
        problems = [{"loc": [quoted(str(p))[1:-1] for p in e.get("loc", ())], "msg": e.get("msg", ""),
                     "type": e.get("type", "")} for e in errors[:QUOTED_NAMES]]
        message = "; ".join(f"{'.'.join(p['loc'])}: {p['msg']}" for p in problems)
        if len(errors) > QUOTED_NAMES:
            message += f"; and {len(errors) - QUOTED_NAMES:,} more"
        hint = _body_hint(request, errors)
        message = f"{hint} ({message})" if hint else message
        service.metrics.request_errors.labels("rest", "INVALID_ARGUMENT").inc()
        return _error("INVALID_ARGUMENT", message, 422, detail=problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error(_HTTP_TO_CODE.get(exc.status_code, "UNKNOWN"), str(exc.detail), exc.status_code, exc.headers)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception):
        service.metrics.request_errors.labels("rest", "INTERNAL").inc()
        return _error("INTERNAL", internal_error("rest").message, 500)

    @app.exception_handler(RlprError)
    async def rlpr_error(request: Request, exc: RlprError):
        service.metrics.request_errors.labels("rest", exc.grpc_code).inc()
        headers = {"Retry-After": str(max(1, round(exc.retry_after_s)))} if exc.retry_after_s else None
        return _error(exc.grpc_code, exc.message, exc.http_status, headers)

    return app
