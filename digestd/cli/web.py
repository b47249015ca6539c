"""`digestd web`: serve the sign-up, manage, unsubscribe and rating pages alone."""

from __future__ import annotations

from dataclasses import replace

import click

from digestd.cli import AppContext, pass_app


@click.command("web")
@click.option("--bind", metavar="HOST:PORT", help="Address to listen on; overrides web.bind.")
@pass_app
def web(app: AppContext, bind: str | None) -> None:
    """Serve the web pages (subscribe, confirm, manage, unsubscribe, rate) without the scheduler.

    Links in emails point at mail.base_url; put a TLS reverse proxy there. Needs
    DIGESTD_SECRET_KEY (the key that signs links) and the [smtp] settings (for
    confirmation emails). Stops on Ctrl-C or SIGTERM.

    \b
    Example:
      DIGESTD_SECRET_KEY=... digestd --config digestd.toml web --bind 127.0.0.1:8080
    """
    from digestd.mail.tokens import check_secret_key
    from digestd.web.server import parse_bind, run_web

    settings = app.settings
    if bind:
        parse_bind(bind)
        settings = replace(settings, web=replace(settings.web, bind=bind))
    check_secret_key(settings.secret_key)
    engine = app.engine()
    click.echo(f"serving {settings.mail.base_url} on {settings.web.bind} (Ctrl-C stops)", err=True)
    run_web(settings, engine)


COMMANDS = [web]
