"""The OpenAI-compatible HTTP app over the batching engine: routes, bearer auth, request
counting, errors in OpenAI's shape.

Endpoints: POST /v1/chat/completions (`chat.py`), POST /v1/completions (`completions.py`),
GET /v1/models, GET /health, GET /metrics (`metrics.py`).
"""

from __future__ import annotations

import hmac
import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .chat import chat_completions
from .completions import completions
from .http import check_model, error_response
from .metrics import metrics_text
from .protocol import ApiError
from .state import ServerConfig, ServerState, build_state

__all__ = ["ServerConfig", "ServerState", "build_state", "create_app"]

log = logging.getLogger("constrained.server")


class _Gate:
    """ASGI middleware: bearer auth on /v1 and per-path request counting."""

    def __init__(self, app, state: ServerState):
        self.app = app
        self.state = state
        key = state.config.api_key
        self.expected = f"Bearer {key}".encode() if key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if self.expected is not None and path.startswith("/v1"):
            auth = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(auth, self.expected):
                self.state.metrics.count(path if len(path) < 64 else "other", 401)
                message = "missing Authorization header: send 'Authorization: Bearer <api key>'" if not auth else "invalid API key"
                response = error_response(401, message, type="authentication_error", code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
                return await response(scope, receive, send)
        status = {}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            known = path if path in ("/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics") else "other"
            self.state.metrics.count(known, status.get("code", 500))


def create_app(state: ServerState) -> FastAPI:
    app = FastAPI(title="constrained", version="0.1.0", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = state

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, err: ApiError):
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException):
        message = f"no route {request.method} {request.url.path}" if err.status_code in (404, 405) else str(err.detail)
        return error_response(err.status_code, message, code="not_found" if err.status_code == 404 else None)

    @app.exception_handler(Exception)
    async def _internal(request: Request, err: Exception):
        log.exception("unhandled error")
        return error_response(500, f"internal error: {type(err).__name__}: {err}", type="server_error")

    @app.post("/v1/chat/completions")
    async def _chat(request: Request):
        return await chat_completions(state, request)

    @app.post("/v1/completions")
    async def _completions(request: Request):
        return await completions(state, request)

    @app.get("/v1/models")
    async def _models():
        return {"object": "list", "data": [{"id": n, "object": "model", "created": state.created, "owned_by": "constrained"} for n in state.names]}

    @app.get("/v1/models/{name:path}")
    async def _model(name: str):
        check_model(state, name)
        return {"id": name, "object": "model", "created": state.created, "owned_by": "constrained"}

    @app.get("/health")
    async def _health():
        ok = state.engine.alive()
        body = {"status": "ok" if ok else "engine stopped", "model": state.names[0], "dialect": state.dialect.name,
                "running": state.engine.running, "queue_depth": state.engine.queue_depth}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def _metrics():
        return PlainTextResponse(metrics_text(state), media_type="text/plain; version=0.0.4")

    app.add_middleware(_Gate, state=state)
    return app
