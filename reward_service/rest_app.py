"""REST front on FastAPI. Like the gRPC servicer, it only translates."""
from __future__ import annotations

import hmac
from typing import Annotated, Union

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.exceptions import HTTPException as StarletteHTTPException
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from reward_service.errors import RlprError, Unauthenticated
from reward_service.service import RewardService
from reward_service.types import RewardItem, ScoredItem

_HTTP_TO_CODE = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND", 405: "UNIMPLEMENTED",
                 413: "RESOURCE_EXHAUSTED", 415: "INVALID_ARGUMENT", 422: "INVALID_ARGUMENT"}
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


class ScoreOneIn(_Strict):
    reward: str = Field(description="A reward kind from GET /v1/rewards.")
    item: ItemIn
    options: dict[str, ReferenceValue] = Field(default_factory=dict)
    deadline_ms: int = Field(default=0, ge=0, description="0 uses the server default.")
    no_cache: bool = False


class ScoreBatchIn(_Strict):
    reward: str
    items: list[ItemIn]
    options: dict[str, ReferenceValue] = Field(default_factory=dict)
    deadline_ms: int = Field(default=0, ge=0)
    no_cache: bool = False


class ResultOut(BaseModel):
    id: str
    reward: float
    components: dict[str, float]
    status: str
    error: str
    cached: bool
    detail: str

    @classmethod
    def of(cls, result: ScoredItem) -> "ResultOut":
        return cls(**result.to_dict())


class BatchOut(BaseModel):
    results: list[ResultOut]


class RewardKindOut(BaseModel):
    name: str
    description: str
    queue: str
    options: dict[str, str]


class SizeLimitMiddleware:
    """Refuses bodies over `max_bytes` with 413, whether or not Content-Length is sent."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
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

        await self.app(scope, replay, send)

    async def _reject(self, send):
        response = JSONResponse({"error": {"code": "RESOURCE_EXHAUSTED", "message": f"body over {self.max_bytes} bytes"}},
                                status_code=413)
        await response({"type": "http"}, None, send)


def create_app(service: RewardService, token: str = "", max_request_bytes: int = 32 << 20) -> FastAPI:
    def require_token(authorization: Annotated[str, Header()] = "") -> None:
        if token and not hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode()):
            raise Unauthenticated("missing or wrong 'Authorization: Bearer <token>' header")

    # With a token, the docs and the OpenAPI schema are guarded like every other endpoint but /healthz.
    app = FastAPI(title="rlpr reward service", version="1", docs_url=None, openapi_url=None)
    app.add_middleware(SizeLimitMiddleware, max_bytes=max_request_bytes)
    guarded = [Depends(require_token)]

    @app.get("/openapi.json", include_in_schema=False, dependencies=guarded)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=guarded)
    async def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title="rlpr reward service")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        # The default handler echoes the input back, which fails on NaN; send location and message only.
        problems = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
                    for e in exc.errors()]
        message = "; ".join(f"{'.'.join(p['loc'])}: {p['msg']}" for p in problems[:5])
        service.metrics.request_errors.labels("rest", "INVALID_ARGUMENT").inc()
        return JSONResponse({"error": {"code": "INVALID_ARGUMENT", "message": message}, "detail": problems}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        code = _HTTP_TO_CODE.get(exc.status_code, "UNKNOWN")
        return JSONResponse({"error": {"code": code, "message": str(exc.detail)}}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RlprError)
    async def rlpr_error(request: Request, exc: RlprError):
        service.metrics.request_errors.labels("rest", exc.grpc_code.name).inc()
        return JSONResponse({"error": {"code": exc.grpc_code.name, "message": exc.message}}, exc.http_status)

    async def score(body: ScoreBatchIn | ScoreOneIn, items: list[ItemIn]) -> list[ScoredItem]:
        return await run_in_threadpool(
            service.score, body.reward, [i.to_item() for i in items], body.options,
            body.deadline_ms / 1000 or None, not body.no_cache, "rest",
        )

    @app.post("/v1/score", response_model=ResultOut, dependencies=guarded)
    async def score_one(body: ScoreOneIn) -> ResultOut:
        """Score one completion."""
        return ResultOut.of((await score(body, [body.item]))[0])

    @app.post("/v1/score:batch", response_model=BatchOut, dependencies=guarded)
    async def score_batch(body: ScoreBatchIn) -> BatchOut:
        """Score a batch; one bad item fails only its own result."""
        return BatchOut(results=[ResultOut.of(r) for r in await score(body, body.items)])

    @app.get("/v1/rewards", response_model=list[RewardKindOut], dependencies=guarded)
    async def rewards() -> list[RewardKindOut]:
        """The reward kinds and their options."""
        return [RewardKindOut(name=s.name, description=s.description, queue=s.queue, options=s.option_docs())
                for s in service.rewards()]

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Liveness and Redis reachability; open without a token."""
        ok = await run_in_threadpool(service.healthy)
        return JSONResponse({"status": "ok" if ok else "redis unreachable"}, 200 if ok else 503)

    @app.get("/metrics", dependencies=guarded)
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")

    return app
