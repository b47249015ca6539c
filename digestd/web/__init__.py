"""The web pages: sign-up with double opt-in, manage, one-click unsubscribe, ratings."""

from digestd.web.app import create_app
from digestd.web.server import run_web, serve_web

__all__ = ["create_app", "run_web", "serve_web"]
