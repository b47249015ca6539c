"""`digestd rate`: rate a paper for a subscriber, as the links in the digest do."""

from __future__ import annotations

import click

from digestd.cli import AppContext, pass_app
from digestd.identity import normalise_arxiv_id


@click.command()
@click.argument("email")
@click.argument("paper_id")
@click.argument("value", type=click.Choice(["up", "down"]))
@pass_app
def rate(app: AppContext, email: str, paper_id: str, value: str) -> None:
    """Rate a paper up or down for a subscriber; the latest rating of a paper counts.
    Liked papers pull similar ones up in later digests, disliked ones push them down.

    \b
    Example:
      digestd rate ada@example.org 2401.01234 up
    """
    from digestd.subscribers import get_subscriber
    from digestd.web.signup import save_rating

    paper = normalise_arxiv_id(paper_id) or paper_id.strip()
    with app.session(writes=True) as session:
        subscriber = get_subscriber(session, email)
        assert subscriber.id is not None
        save_rating(session, subscriber.id, paper, 1 if value == "up" else -1, now=app.now())
    click.echo(f"{subscriber.email} rated {paper} {value}")


COMMANDS = [rate]
