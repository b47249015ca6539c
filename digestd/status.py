"""The operator's summary: papers, subscribers, ledger, sources (plain data, then text)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from digestd.bounces.history import count_bounces, format_bounce, list_bounces
from digestd.config import EncoderSettings
from digestd.delivery.coordination import list_live_workers
from digestd.delivery.ledger import (
    CLAIMED,
    PENDING,
    PERM_FAILED,
    SENDING,
    SENT,
    SKIPPED,
    TEMP_FAILED,
    UNKNOWN,
    recent_failures,
)
from digestd.delivery.ledger import count_by_status as count_deliveries
from digestd.embedding.encoder import encoder_identity
from digestd.embedding.stored import count_embedded
from digestd.identity import excerpt
from digestd.models import Paper, SourceState, Subscriber
from digestd.store import count_papers, open_session
from digestd.subscribers import count_by_status


def collect_status(
    engine: Engine, *, now: datetime, daemon: str | None = None, encoder: EncoderSettings | None = None
) -> dict[str, Any]:
    """Everything `digestd status` shows; `daemon` is what holds the daemon lock, if anything;
    `encoder`: how many papers its model embedded (when a model is set)."""
    with open_session(engine) as session:
        ledger = count_deliveries(session)
        failures = recent_failures(session)
        sources = [
            {
                "name": s.name,
                "kind": s.kind,
                "last_run_at": s.last_run_at,
                "last_success_at": s.last_success_at,
                "last_new": s.last_new,
                "last_updated": s.last_updated,
                "last_seen": s.last_seen,
                "total_new": s.total_new,
                "last_note": s.last_note,
                "last_error": s.last_error,
                "last_error_at": s.last_error_at,
                "consecutive_failures": s.consecutive_failures,
                "next_attempt_at": s.next_attempt_at,
            }
            for s in session.scalars(select(SourceState).order_by(SourceState.name))
        ]
        per_source: dict[str, int] = {}
        for (names,) in session.execute(select(Paper.sources)):
            for name in names:
                key = name.split(":", 1)[0] if name.startswith("file:") else name
                per_source[key] = per_source.get(key, 0) + 1
        due = session.scalar(
            select(func.count())
            .select_from(Subscriber)
            .where(Subscriber.status == "active", col(Subscriber.next_due_at) <= now)
        )
        upcoming = session.execute(
            select(Subscriber.email, Subscriber.next_due_at)
            .where(Subscriber.status == "active", col(Subscriber.next_due_at).is_not(None))
            .order_by(col(Subscriber.next_due_at))
            .limit(5)
        )
        return {
            "generated_at": now,
            "daemon": daemon,
            "next_due": [{"email": email, "next_due_at": due_at} for email, due_at in upcoming],
            "papers": {"total": count_papers(session), "per_source": per_source},
            "subscribers": count_by_status(session),
            "due_now": int(due or 0),
            "ledger": ledger,
            "deliveries": summarise_ledger(ledger),
            "recent_failures": failures,
            "bounces": {"counts": count_bounces(session), "recent": list_bounces(session, limit=5)},
            "sources": sources,
            "workers": list_live_workers(engine, now=now),
            "encoder": _encoder_status(session, encoder),
        }


def _encoder_status(session: Session, encoder: EncoderSettings | None) -> dict[str, Any] | None:
    if encoder is None or not encoder.model:
        return None
    embedded, total = count_embedded(session, encoder_identity(encoder))
    return {"model": encoder.model, "max_tokens": encoder.max_tokens, "embedded": embedded, "papers": total}


# How `status` groups the ledger's states for people.
LEDGER_GROUPS = {
    "sent": (SENT,),
    "pending": (PENDING, CLAIMED, SENDING),
    "retrying": (TEMP_FAILED,),
    "failed": (PERM_FAILED,),
    "unknown": (UNKNOWN,),
    "skipped": (SKIPPED,),
}


def summarise_ledger(ledger: dict[str, int]) -> dict[str, int]:
    """Counts by status → sent, pending (incl. claimed and sending), retrying, failed, unknown, skipped."""
    return {group: sum(ledger.get(status, 0) for status in members) for group, members in LEDGER_GROUPS.items()}


def format_failures(failures: list[dict[str, Any]]) -> list[str]:
    lines = ["recent delivery failures:"] if failures else []
    for failure in failures:
        retry = f", next try {failure['next_attempt_at']:%Y-%m-%d %H:%M}" if failure["next_attempt_at"] else ""
        lines.append(
            f"  {failure['updated_at']:%Y-%m-%d %H:%M} {failure['email']} ({failure['period']}): "
            f"{failure['status']} after {failure['attempts']} attempt(s){retry}: {failure['reason']}"
        )
    return lines


def format_status(report: dict[str, Any]) -> str:
    lines = [f"papers:      {report['papers']['total']}"]
    for name, count in sorted(report["papers"]["per_source"].items()):
        lines.append(f"  {name}: {count}")
    if report["encoder"]:
        encoder = report["encoder"]
        lines.append(f"encoder:     {encoder['model']}, {encoder['embedded']} of {encoder['papers']} papers embedded")
        if encoder["embedded"] < encoder["papers"]:
            lines.append("  the others: `digestd papers embed` (or the next send embeds its papers)")
    subscribers = report["subscribers"]
    summary = ", ".join(f"{count} {status}" for status, count in sorted(subscribers.items())) or "none"
    lines.append(f"subscribers: {summary}; {report['due_now']} due now")
    for item in report["next_due"]:
        lines.append(f"  next: {item['next_due_at']:%Y-%m-%d %H:%M} UTC  {item['email']}")
    lines.insert(0, f"daemon:      {'running (' + report['daemon'] + ')' if report['daemon'] else 'not running'}")
    deliveries = report["deliveries"]
    ledger = (
        ", ".join(f"{count} {group}" for group, count in deliveries.items()) if any(deliveries.values()) else "empty"
    )
    lines.append(f"ledger:      {ledger}")
    if deliveries["unknown"]:
        lines.append("  unknown: the connection dropped during DATA; check, then `digestd send --resend-unknown`")
    lines.extend(format_failures(report["recent_failures"]))
    lines.extend(format_bounces(report["bounces"]))
    lines.extend(format_workers(report["workers"]))
    if report["sources"]:
        lines.append("sources:")
    lines += [format_source(source) for source in report["sources"]]
    return "\n".join(lines)


def format_bounces(bounces: dict[str, Any]) -> list[str]:
    """What came back (README, "Bounces"): counts by kind, then the latest events."""
    if not bounces["counts"]:
        return []
    counts = ", ".join(f"{count} {kind}" for kind, count in sorted(bounces["counts"].items()))
    return [f"bounces:     {counts}", *(f"  {format_bounce(event)}" for event in bounces["recent"])]


def format_workers(workers: list[dict[str, Any]]) -> list[str]:
    """The live delivery workers, one line each, with their throughput over their life."""
    lines = [f"workers:     {len(workers)} live"] if workers else []
    for worker in workers:
        lines.append(
            f"  {worker['id']} (pid {worker['pid']} on {worker['host']}): {worker['sent']} sent since "
            f"{worker['started_at']:%Y-%m-%d %H:%M:%S}, {worker['messages_per_second']:.1f} messages/s, "
            f"heartbeat {worker['heartbeat_at']:%H:%M:%S}"
        )
    return lines


def format_source(source: dict[str, Any]) -> str:
    """One source in one or two lines: its last run, then its last error if it has one."""
    if source["last_run_at"] is None:
        return f"  {source['name']} ({source['kind']}): never run"
    failures = source["consecutive_failures"]
    if failures:
        success = source["last_success_at"]
        outcome = f"FAILED ({failures} in a row, last success {f'{success:%Y-%m-%d %H:%M}' if success else 'never'})"
        if source["next_attempt_at"]:
            outcome += f", next attempt after {source['next_attempt_at']:%Y-%m-%d %H:%M}"
    else:
        outcome = f"ok, {source['last_seen']} read, {source['last_new']} new, {source['last_updated']} updated"
        outcome += f" ({excerpt(source['last_note'], 300)})" if source["last_note"] else ""
    line = f"  {source['name']} ({source['kind']}): last run {source['last_run_at']:%Y-%m-%d %H:%M}, {outcome}"
    if source["last_error"]:
        state = "recovered since" if not failures else "error"
        shown = excerpt(source["last_error"], 300)  # one short line, even for a message stored by an older digestd
        line += f"\n    last error {source['last_error_at']:%Y-%m-%d %H:%M} ({state}): {shown}"
    return line
