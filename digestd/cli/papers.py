"""`digestd ingest`, `digestd preview` and `digestd papers embed`."""

from __future__ import annotations

import json
import time
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from digestd.cli import AppContext, pass_app
from digestd.errors import ConfigError, InputError, SourceError
from digestd.records import Digest

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from digestd.embedding.encoder import Encoder


@click.command()
@click.option(
    "--source",
    "sources",
    multiple=True,
    metavar="NAME",
    help="Run only this configured source (repeatable). Default: all of them.",
)
@click.option(
    "--file",
    "files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Import a JSONL/JSON/CSV paper file (gzip accepted; repeatable).",
)
@click.option("--force", is_flag=True, help="Run sources even while they back off after failures.")
@pass_app
def ingest(app: AppContext, sources: tuple[str, ...], files: tuple[Path, ...], force: bool) -> None:
    """Fetch new papers from the configured sources, or import paper files.

    Without options every [[sources]] entry of the config runs, one after the other,
    each in its own transaction; a failing source is recorded (see `digestd status`)
    and the others still run. The command exits with status 1 if any source failed.

    Files carry the fields id, title, abstract, authors, categories, published. A paper
    already stored is merged, not duplicated; a file with a bad row imports nothing.

    \b
    Examples:
      digestd ingest
      digestd ingest --source arxiv-cs-lg
      digestd ingest --file ../shared/data/abstracts.jsonl.gz
    """
    from digestd.ingest.run import run_sources

    engine = app.engine()
    for path in files:
        _ingest_path(app, engine, path)
    if files and not sources:
        return
    if not app.settings.sources:
        raise InputError(
            "nothing to ingest: no sources are configured",
            hint="add [[sources]] tables to the config, or pass --file PATH",
        )
    reports = run_sources(
        engine,
        app.settings,
        names=sources or None,
        now=app.now(),
        progress=lambda line: click.echo(line, err=True),
        force=force,
        encoder=_encoder(app),
    )
    for report in reports:
        click.echo(report.summary())
    failed = [report.source for report in reports if report.error]
    if failed:
        raise SourceError(
            f"{len(failed)} of {len(reports)} source(s) failed: {', '.join(failed)}",
            hint="`digestd status` shows each error; the other sources were saved",
        )


def _ingest_path(app: AppContext, engine: Engine, path: Path) -> None:
    from digestd.ingest.run import ingest_file

    started = time.perf_counter()
    click.echo(f"importing {path} ...", err=True)
    report = ingest_file(engine, path, now=app.now(), encoder=_encoder(app))
    seconds = time.perf_counter() - started
    notes = "".join(f"; {note}" for note in report.notes)
    click.echo(
        f"{path}: {report.seen} papers read, {report.new} new, {report.updated} updated, "
        f"{report.skipped} unchanged{notes} ({seconds:.1f} s)"
    )


def digest_json(digest: Digest) -> dict[str, object]:
    """The machine-readable preview: papers in rank order, with section and reasons."""
    return {
        "subscriber": digest.profile.email,
        "period_start": digest.period_start.isoformat(),
        "period_end": digest.period_end.isoformat(),
        "candidates": digest.candidates,
        "papers": [
            {
                "rank": rank,
                "id": pick.paper.id,
                "title": pick.paper.title,
                "score": pick.score,
                "section": pick.section,
                "reasons": list(pick.reasons),
            }
            for rank, pick in enumerate(digest.picks, start=1)
        ],
        "sections": [{"label": s.label, "papers": [p.paper.id for p in s.picks]} for s in digest.sections],
    }


def _date(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{name} {value!r} is not a date: use YYYY-MM-DD") from None


@click.command()
@click.argument("email")
@click.option("--since", metavar="DATE", help="Candidates published on or after DATE (YYYY-MM-DD).")
@click.option("--until", metavar="DATE", help="Candidates published on or before DATE (YYYY-MM-DD).")
@click.option("--format", "fmt", type=click.Choice(["text", "html", "eml", "json"]), default="text", show_default=True)
@pass_app
def preview(app: AppContext, email: str, since: str | None, until: str | None, fmt: str) -> None:
    """Show the digest a subscriber would get, without sending or recording anything.

    Without --since/--until the candidates are those of the subscriber's next period.

    \b
    Example:
      digestd preview ada@example.org --since 2026-01-01 --until 2026-01-31 --format json
    """
    from digestd import api

    now = app.now()
    since_day, until_day = _date(since, "--since"), _date(until, "--until")
    digest = api.preview_digest(app.engine(), email, now=now, since=since_day, until=until_day, encoder=_encoder(app))
    click.echo(_rendered(app, digest, fmt, now), nl=fmt != "eml")
    _explain_no_candidates(app, digest, email, dated=bool(since or until))


def _rendered(app: AppContext, digest: Digest, fmt: str, now: datetime) -> str:
    from digestd.mail.render import face_of, load_templates, render_email, render_parts

    if fmt == "json":
        return json.dumps(digest_json(digest), indent=2, ensure_ascii=False)
    templates = load_templates(app.settings.mail)
    face = face_of(app.settings.web, app.settings.mail)
    if fmt == "eml":
        period = _period(digest.period_end)
        return render_email(templates, digest, mail=app.settings.mail, period=period, now=now, face=face).as_string()
    text, html = render_parts(templates, digest, mail=app.settings.mail, face=face)
    return html if fmt == "html" else text


def _explain_no_candidates(app: AppContext, digest: Digest, email: str, *, dated: bool) -> None:
    """On stderr (stdout may be JSON or an email): why no stored paper is a candidate, and how to see some."""
    from digestd import api

    if digest.candidates:
        return
    found = api.explain_no_new_papers(app.engine(), start=digest.period_start, end=digest.period_end, dated=dated)
    if found:
        note, latest = found
        click.echo(f"note: {note}", err=True)
        click.echo(f"hint: {api.preview_hint(email, latest)}", err=True)


def _period(end: datetime) -> str:
    return end.date().isoformat()


def _encoder(app: AppContext) -> Encoder | None:
    from digestd.embedding.encoder import open_encoder

    return open_encoder(app.settings.encoder)


@click.group()
def papers() -> None:
    """Work on the stored papers (`ingest` stores them, `preview` ranks them).

    \b
    Example:
      digestd papers embed
    """


@papers.command()
@pass_app
def embed(app: AppContext) -> None:
    """Embed the stored papers that have no vector from the sentence encoder yet.

    New papers are embedded when they are ingested; this is for the papers stored before
    [encoder] model was set (or changed). About 20 papers a second on two cores: 2,000
    papers take under two minutes. An interrupted run keeps what it embedded.

    \b
    Example:
      digestd --config digestd.toml papers embed
    """
    from digestd.embedding.encoder import open_encoder
    from digestd.embedding.vectors import embed_stored

    encoder = open_encoder(app.settings.encoder)
    if encoder is None:
        raise ConfigError(
            "no sentence encoder is configured",
            hint='set [encoder] model (e.g. model = "sentence-transformers/all-MiniLM-L6-v2") or DIGESTD_ENCODER_MODEL',
        )

    def progress(done: int, todo: int) -> None:
        click.echo(f"embedded {done:,} of {todo:,} papers", err=True)

    report = embed_stored(app.engine(), encoder, progress)
    click.echo(
        f"{report.embedded:,} papers embedded with {app.settings.encoder.model}; "
        f"{report.before + report.embedded:,} of {report.total:,} stored papers have a vector"
    )


COMMANDS = [ingest, preview, papers]
