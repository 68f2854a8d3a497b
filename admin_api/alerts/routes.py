"""Alerts for ops teams: list, acknowledge, and the live Server-Sent Events stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import StreamingResponse

from admin_api import pagination
from admin_api.alerts.hub import AlertHub, Subscription
from admin_api.alerts.repo import AlertOut, acknowledge, alert_out, list_alerts
from admin_api.audit import record_change
from admin_api.auth import READERS, Scope, allow
from admin_api.context import Ctx
from admin_api.problems import not_found, responses
from admin_api.schemas import Cursor, From, Id, Limit, Page, RowIdPath, To, check_range

router = APIRouter(tags=["alerts"])

HEARTBEAT_S: Final = 15.0
REPLAY_LIMIT: Final = 1000
Readers = Annotated[Scope, Depends(allow(READERS))]
Kind = Literal["low_balance", "exhausted", "status_changed"]


class AlertPage(Page):
    items: list[AlertOut]


@router.get(
    "/v1/tenants/{tenant_id}/alerts", response_model=AlertPage,
    responses=responses(401, 403, 404, 422), summary="Stored alerts, newest first",
)
async def alerts(
    ctx: Ctx, scope: Readers, limit: Limit = 50, cursor: Cursor = None, start: From = None,
    end: To = None, account: Annotated[Id | None, Query()] = None,
    kind: Annotated[Kind | None, Query()] = None,
    acknowledged: Annotated[bool | None, Query()] = None,
) -> AlertPage:
    check_range(start, end)
    before = pagination.decode(cursor, int)
    rows = await list_alerts(
        ctx.pool, scope.tenant_id, account=account, kind=kind, acknowledged=acknowledged,
        start=start, end=end, before_id=before[0] if before else None, limit=limit + 1,
    )
    items, more = pagination.page(rows, limit)
    return AlertPage(
        items=[alert_out(r) for r in items],
        next_cursor=pagination.encode(items[-1]["id"]) if more else None,
    )


@router.post(
    "/v1/tenants/{tenant_id}/alerts/{alert_id}/ack", response_model=AlertOut,
    responses=responses(401, 403, 404, 422), summary="Acknowledge an alert (idempotent)",
)
async def ack(ctx: Ctx, scope: Readers, alert_id: RowIdPath) -> AlertOut:
    async with ctx.pool.acquire() as conn, conn.transaction():
        row, changed = await acknowledge(conn, scope.tenant_id, alert_id, scope.caller.key_id)
        if row is None:
            raise not_found(f"alert {alert_id}")
        if changed:
            await record_change(
                conn, scope.caller, scope.tenant_id, "alert.acknowledge", f"alert:{alert_id}",
                {"acknowledged_at": None}, {"acknowledged_at": row["acknowledged_at"]},
            )
    return alert_out(row)


def _event(alert: AlertOut) -> bytes:
    data = json.dumps(alert.model_dump(mode="json"), separators=(",", ":"))
    return f"id: {alert.id}\nevent: alert\ndata: {data}\n\n".encode()


async def _events(
    ctx: Ctx, hub: AlertHub, sub: Subscription, scope: Scope, last_id: int | None,
    account: str | None,
) -> AsyncIterator[bytes]:
    # Subscribed before the replay query, so nothing committed in between is missed; the
    # comment tells the client the stream is live.
    yield b"retry: 2000\n: subscribed\n\n"
    replayed = 0
    if last_id is not None:
        rows = await list_alerts(
            ctx.pool, scope.tenant_id, account=account, after_id=last_id,
            limit=REPLAY_LIMIT, ascending=True,
        )
        for row in rows:
            replayed = row["id"]
            yield _event(alert_out(row))
        if len(rows) == REPLAY_LIMIT:
            return  # more to replay: the client reconnects from the last id it got
    while True:
        try:
            async with asyncio.timeout(HEARTBEAT_S):
                alert = await sub.queue.get()
        except TimeoutError:
            yield b": keepalive\n\n"
            continue
        if alert is None:
            return  # fell behind: reconnecting with Last-Event-ID replays the gap
        if alert.id > replayed:
            yield _event(alert)


def _stream(
    ctx: Ctx, scope: Scope, last_id: int | None, account: str | None
) -> AsyncIterator[bytes]:
    hub = ctx.hub

    async def gen() -> AsyncIterator[bytes]:
        with hub.subscribe(scope.tenant_id, account) as sub:
            async for chunk in _events(ctx, hub, sub, scope, last_id, account):
                yield chunk

    return gen()


_SSE: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": "`text/event-stream`: `event: alert`, `id: <alert id>`, JSON `data`"
        " shaped like an alert; `: keepalive` comments every 15 s",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
}


@router.get(
    "/v1/tenants/{tenant_id}/alerts/stream", response_class=StreamingResponse,
    responses={**_SSE, **responses(401, 403, 404, 422)},
    summary="Live alerts of the tenant (Server-Sent Events)",
)
async def stream(
    ctx: Ctx, scope: Readers,
    last_event_id: Annotated[
        int | None, Header(ge=0, le=2**62, description="Replay alerts after this id")
    ] = None,
    account: Annotated[Id | None, Query(description="Only this account")] = None,
) -> StreamingResponse:
    return StreamingResponse(
        _stream(ctx, scope, last_event_id, account),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
