"""What came back, as `status`, `subscribers show` and `export` list it (light imports:
`digestd status` loads only the database layer)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from digestd.models import Bounce, Subscriber


def list_bounces(session: Session, *, subscriber_id: int | None = None, limit: int = 10) -> list[dict[str, Any]]:
    """The latest events, newest first (of one subscriber, or of all)."""
    query = select(Bounce, Subscriber.email).join(Subscriber, col(Subscriber.id) == Bounce.subscriber_id)
    if subscriber_id is not None:
        query = query.where(Bounce.subscriber_id == subscriber_id)
    rows = session.execute(query.order_by(col(Bounce.received_at).desc(), col(Bounce.id).desc()).limit(limit))
    return [_describe(event, address) for event, address in rows]


def bounces_by_subscriber(session: Session) -> dict[int, list[dict[str, Any]]]:
    """Every event, newest first, by subscriber id (for `export`: one query, not one per subscriber)."""
    query = select(Bounce, Subscriber.email).join(Subscriber, col(Subscriber.id) == Bounce.subscriber_id)
    result: dict[int, list[dict[str, Any]]] = {}
    for event, address in session.execute(query.order_by(col(Bounce.received_at).desc(), col(Bounce.id).desc())):
        result.setdefault(event.subscriber_id, []).append(_describe(event, address))
    return result


def _describe(event: Bounce, address: str) -> dict[str, Any]:
    return {
        "received_at": event.received_at,
        "email": address,
        "kind": event.kind,
        "status": event.status,
        "diagnostic": event.diagnostic,
        "source": event.source,
        "action": event.action,
    }


def count_bounces(session: Session) -> dict[str, int]:
    rows = session.execute(select(Bounce.kind, func.count()).group_by(Bounce.kind))
    return {kind: int(count) for kind, count in rows}


def format_bounce(event: dict[str, Any]) -> str:
    """One event in one line, as `status` and `subscribers show` print it."""
    status = f" {event['status']}" if event["status"] else ""
    via = f" via {event['source']}" if event["source"] else ""
    diagnostic = f": {event['diagnostic'][:200]}" if event["diagnostic"] else ""
    when = f"{event['received_at']:%Y-%m-%d %H:%M}"
    return f"{when} {event['email']} {event['kind']}{status}{via}, {event['action']}{diagnostic}"
