"""`digestd subscribers ...`: add, list, show, edit, remove, import, export, wipe."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from digestd.cli import AppContext, pass_app
from digestd.errors import InputError
from digestd.identity import parse_bibtex_ids
from digestd.records import SUBSCRIBER_STATUSES

if TYPE_CHECKING:
    from digestd.subscribers import SubscriberInput


def profile_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The profile and schedule options shared by `add` and `edit`."""
    options = [
        click.option("--name", help="Name used in the greeting."),
        click.option("--keywords", metavar='"A, B:2"', help="Comma-separated keywords; TERM:WEIGHT weighs one."),
        click.option(
            "--exclude", metavar='"X, Y"', help="Comma-separated words; a paper containing one never appears."
        ),
        click.option("--category", "categories", multiple=True, metavar="CAT", help="arXiv category (repeatable)."),
        click.option("--author", "authors", multiple=True, metavar="NAME", help="Followed author (repeatable)."),
        click.option("--seed", "seeds", multiple=True, metavar="ARXIV_ID", help="Seed paper (repeatable)."),
        click.option("--frequency", type=click.Choice(["weekly", "daily"]), help="How often the digest comes."),
        click.option(
            "--day", type=click.Choice(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]), help="Weekly send day."
        ),
        click.option("--time", "time_", metavar="HH:MM", help="Local send time, 24-hour."),
        click.option("--timezone", metavar="ZONE", help="IANA timezone, e.g. Europe/Berlin."),
        click.option("--weekdays-only/--every-day", default=None, help="Daily digests on weekdays only."),
        click.option(
            "--category-filter/--category-boost",
            default=None,
            help="Chosen categories: only papers in them (filter), or a boost for them (default).",
        ),
        click.option(
            "--trending/--no-trending",
            default=None,
            help="The period's trending papers: first (with interests) or alone (with none).",
        ),
        click.option("--max-papers", type=int, help="At most this many papers per digest."),
        click.option("--min-score", type=float, help="Leave out papers scoring below this."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _input(email: str, values: dict[str, Any], *, is_edit: bool) -> SubscriberInput:
    from digestd.subscribers import SubscriberInput

    def many(name: str) -> list[str] | None:
        given = list(values[name])
        return given if given or not is_edit else None

    return SubscriberInput(
        email=email,
        name=values["name"],
        keywords=values["keywords"],
        exclude=values["exclude"],
        categories=many("categories"),
        authors=many("authors"),
        seeds=many("seeds"),
        frequency=values["frequency"],
        day=values["day"],
        time=values["time_"],
        timezone=values["timezone"],
        weekdays_only=values["weekdays_only"],
        category_filter=values["category_filter"],
        trending=values["trending"],
        max_papers=values["max_papers"],
        min_score=values["min_score"],
        status=values.get("status"),
    )


@click.group()
def subscribers() -> None:
    """Manage subscribers and their interests.

    \b
    Example:
      digestd subscribers add ada@example.org --keywords "quantum error correction" --category quant-ph
      digestd subscribers list
    """


@subscribers.command()
@click.argument("email")
@profile_options
@pass_app
def add(app: AppContext, email: str, **values: Any) -> None:
    """Add a subscriber (active at once; the web sign-up asks for confirmation instead).

    \b
    Example:
      digestd subscribers add ada@example.org --name Ada --keywords "graph neural networks:2, diffusion" \\
          --exclude "survey" --category cs.LG --author "Yoshua Bengio" --seed 2401.01234 \\
          --frequency weekly --day mon --time 08:00 --timezone Europe/Berlin --max-papers 15
    """
    from digestd.subscribers import add_subscriber

    with app.session(writes=True) as session:
        subscriber = add_subscriber(
            session, _input(email, values, is_edit=False), defaults=app.settings.digest, now=app.now()
        )
        due = subscriber.next_due_at
    click.echo(f"added {subscriber.email}; first digest due {due:%Y-%m-%d %H:%M} UTC" if due else f"added {email}")


@subscribers.command()
@click.argument("email")
@profile_options
@click.option("--status", type=click.Choice(SUBSCRIBER_STATUSES), help="Set the status (e.g. paused).")
@pass_app
def edit(app: AppContext, email: str, **values: Any) -> None:
    """Change a subscriber; options not given stay as they are. A list option given
    replaces that whole list.

    \b
    Example:
      digestd subscribers edit ada@example.org --keywords "diffusion models" --frequency daily --time 07:30
    """
    from digestd.subscribers import edit_subscriber

    with app.session(writes=True) as session:
        subscriber = edit_subscriber(session, _input(email, values, is_edit=True), now=app.now())
        address = subscriber.email
    click.echo(f"updated {address}")


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


@subscribers.command(name="list")
@click.option("--status", type=click.Choice(SUBSCRIBER_STATUSES), help="Only subscribers with this status.")
@pass_app
def list_(app: AppContext, status: str | None) -> None:
    """List subscribers as a table.

    \b
    Example:
      digestd subscribers list --status active
    """
    from digestd.subscribers import list_subscribers

    with app.session() as session:
        rows = [
            [
                s.email,
                s.name,
                s.status,
                f"{s.frequency} {s.send_day if s.frequency == 'weekly' else ''} {s.send_time}".replace("  ", " "),
                s.timezone,
                f"{s.next_due_at:%Y-%m-%d %H:%M}" if s.next_due_at else "-",
            ]
            for s in list_subscribers(session, status=status)
        ]
    if not rows:
        click.echo("no subscribers yet; add one with `digestd subscribers add EMAIL`")
        return
    click.echo(_table(rows, ["EMAIL", "NAME", "STATUS", "SCHEDULE", "TIMEZONE", "NEXT DUE (UTC)"]))
    click.echo(f"{len(rows)} subscriber(s)")


@subscribers.command()
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def show(app: AppContext, email: str, as_json: bool) -> None:
    """Show one subscriber's profile and schedule.

    \b
    Example:
      digestd subscribers show ada@example.org
    """
    from digestd.bounces.history import format_bounce, list_bounces
    from digestd.subscribers import describe, get_subscriber, load_profile_items

    with app.session() as session:
        subscriber = get_subscriber(session, email)
        assert subscriber.id is not None
        data = describe(subscriber, load_profile_items(session, [subscriber.id])[subscriber.id])
        data["next_due_at"] = subscriber.next_due_at.isoformat() if subscriber.next_due_at else None
        events = list_bounces(session, subscriber_id=subscriber.id)
    if as_json:
        data["bounces"] = [{**event, "received_at": event["received_at"].isoformat()} for event in events]
        click.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        click.echo(f"{key.replace('_', ' ') + ':':<15} {value if value not in ('', None) else '-'}")
    for number, event in enumerate(events):
        click.echo(f"{'bounces:' if number == 0 else '':<15} {format_bounce(event)}")


@subscribers.command()
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def remove(app: AppContext, email: str, yes: bool) -> None:
    """Delete a subscriber with their profile, ratings and history.

    \b
    Example:
      digestd subscribers remove ada@example.org --yes
    """
    from digestd.subscribers import remove_subscriber

    if not yes:
        click.confirm(f"Remove {email} and everything about them?", abort=True)
    with app.session(writes=True) as session:
        remove_subscriber(session, email)
    click.echo(f"removed {email}")


@subscribers.command()
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def wipe(app: AppContext, email: str, yes: bool) -> None:
    """Erase a subscriber (e.g. a GDPR request), keeping only a hash of the address on the
    suppression list so they are never mailed again.

    \b
    Example:
      digestd subscribers wipe ada@example.org --yes
    """
    from digestd.subscribers import wipe_subscriber

    if not yes:
        click.confirm(f"Erase {email} for good?", abort=True)
    with app.session(writes=True) as session:
        wipe_subscriber(session, email, now=app.now())
    click.echo(f"wiped {email}; a hash of the address stays on the suppression list")


@subscribers.command()
@click.argument("email")
@pass_app
def unsuppress(app: AppContext, email: str) -> None:
    """Lift a suppression on purpose (after a bounce, a complaint or a refusal at RCPT):
    the address leaves the suppression list and a suppressed subscriber is active again.

    \b
    Example:
      digestd subscribers unsuppress ada@example.org
    """
    from digestd.bounces.events import unsuppress as lift

    with app.session(writes=True) as session:
        state = lift(session, email, now=app.now())
    click.echo(f"unsuppressed {email}: {state}")


@subscribers.command(name="import")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@pass_app
def import_(app: AppContext, path: Path) -> None:
    """Add subscribers from a CSV or JSON file (as `export` writes). All or nothing:
    if any row is bad, every bad row is reported with its line number and nothing is added.

    \b
    Example:
      digestd subscribers import subscribers.csv
    """
    from digestd import subscriber_files

    rows = subscriber_files.read_subscriber_file(path)
    with app.session(writes=True) as session:
        added = subscriber_files.import_subscribers(session, rows, defaults=app.settings.digest, now=app.now())
    click.echo(f"imported {added} subscriber(s) from {path}")


@subscribers.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), help="Default: from the file name, else csv.")
@pass_app
def export(app: AppContext, path: Path | None, fmt: str | None) -> None:
    """Write every subscriber to a CSV or JSON file (or stdout) that `import` reads.

    \b
    Example:
      digestd subscribers export backup.json
    """
    from digestd import subscriber_files

    fmt = fmt or ("json" if path and path.suffix == ".json" else "csv")
    with app.session() as session:
        text = subscriber_files.export_subscribers(session, fmt)
    if path is None:
        click.echo(text, nl=False)
    else:
        path.write_text(text, encoding="utf-8")
        click.echo(f"exported to {path}")


@subscribers.group()
def seeds() -> None:
    """Manage a subscriber's seed papers (papers like the ones they want).

    \b
    Example:
      digestd subscribers seeds import ada@example.org refs.bib
    """


@seeds.command(name="import")
@click.argument("email")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@pass_app
def import_seeds(app: AppContext, email: str, path: Path) -> None:
    """Add the arXiv papers a BibTeX file cites (eprint fields, arxiv.org links, "arXiv
    preprint arXiv:..." notes) to a subscriber's seed papers. Entries without an arXiv id
    are ignored.

    \b
    Example:
      digestd subscribers seeds import ada@example.org ~/papers/refs.bib
    """
    from digestd.subscribers import add_seeds

    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    found = parse_bibtex_ids(text)
    if not found:
        raise InputError(f"{path} cites no arXiv paper", hint="seeds need arXiv ids (eprint = {2401.01234})")
    with app.session(writes=True) as session:
        added = add_seeds(session, email, found)
    click.echo(f"{len(found)} arXiv id(s) in {path}; {len(added)} new seed(s) for {email}: {', '.join(added) or '-'}")


COMMANDS = [subscribers]
