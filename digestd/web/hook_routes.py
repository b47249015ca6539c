"""`POST /hooks/bounce`: bounces and complaints reported over HTTP by a mail provider.

A JSON object: `email` or `token` (the return token of `bounces+<token>@...`), `kind`
(hard, soft, complaint or unsubscribe), optional `status` (5.1.1) and `diagnostic`. The
request carries `Authorization: Bearer <DIGESTD_BOUNCES_WEBHOOK_SECRET>`; without that
secret set, the route does not exist. The same policy as mailed bounces (`digestd.bounces`).
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from digestd.bounces.events import handle_report
from digestd.errors import InputError, NotFoundError
from digestd.validation import check_text
from digestd.web.context import Web

log = logging.getLogger(__name__)
MAX_BODY = 16_384


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def _read_report(body: bytes) -> dict[str, str]:
    try:
        data: Any = json.loads(body)
    except (ValueError, RecursionError):
        raise InputError("the body is not JSON") from None
    if not isinstance(data, dict):
        raise InputError("the body must be a JSON object")
    report = {}
    for name, limit in (("email", 320), ("token", 100), ("kind", 20), ("status", 20), ("diagnostic", 500)):
        value = data.get(name, "")
        report[name] = check_text(name, value, max_length=limit, error=InputError) if value else ""
    if not (report["email"] or report["token"]):
        raise InputError("give the subscriber's email or the return token")
    return report


async def bounce_hook(web: Web, request: Request) -> Response:
    secret = web.settings.bounces.webhook_secret
    if not secret:
        return _error(404, "not found")
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), secret.encode()):
        return _error(401, "a valid Authorization: Bearer <secret> header is needed")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return _error(413, "the body is too large")
    try:
        report = _read_report(body)
        outcome = await run_in_threadpool(lambda: handle_report(web.engine, web.settings, **report, now=web.now()))
    except InputError as error:
        return _error(400, error.message)
    except NotFoundError as error:
        return _error(404, error.message)
    return JSONResponse({"kind": outcome.kind, "action": outcome.action})


def hook_routes(web: Web) -> list[Route]:
    async def endpoint(request: Request) -> Response:
        return await bounce_hook(web, request)

    return [Route("/hooks/bounce", endpoint, methods=["POST"])]
