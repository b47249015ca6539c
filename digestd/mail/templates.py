"""Load the email templates: Jinja2, with the CSS of `base.html` inlined once per template.

Email clients ignore most `<style>` rules, so every element needs its style inline.
Doing that per email (css-inline on each rendered HTML) is the costliest step of a run;
instead the *template source* is inlined once, when it is loaded. Jinja constructs are
first swapped for placeholders the HTML parser keeps in place (statements as comments,
so they may sit between table rows; expressions as plain words), then swapped back.
`base.html` keeps its `<style>` block for the clients that read it (media queries for
narrow screens and dark mode). The parser moves nothing a browser would not: write tables
with an explicit `<tbody>` when a loop repeats their rows.

All templates are loaded and rendered once on a sample digest at start-up, so a broken
one fails with its file and line before any mail is built.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import css_inline
import jinja2

from digestd.config import MailSettings
from digestd.errors import RenderError
from digestd.mail.message import lines_matter

TEMPLATE_NAMES = ("base.html", "digest.html", "digest.txt", "empty.html", "empty.txt")
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_PLACEHOLDER = re.compile(r"(?:<!--|&lt;!--)?dgjt(\d+)q(?:-->|--&gt;|=\"\")?")
_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.S | re.I)


def templates_dir(mail: MailSettings) -> Path:
    """The operator's `mail.templates_dir`, or the templates shipped with digestd."""
    if mail.templates_dir:
        return Path(mail.templates_dir).expanduser()
    package = Path(__file__).resolve().parents[1]  # digestd/, beside templates/ in a checkout
    for candidate in (package.parent / "templates", package / "_templates"):
        if (candidate / "digest.html").exists():
            return candidate
    raise RenderError("the email templates are missing from this installation", hint="reinstall digestd")


def _protect(source: str) -> tuple[str, list[str]]:
    """Swap Jinja constructs for placeholders an HTML parser leaves where they are."""
    kept: list[str] = []

    def swap(match: re.Match[str]) -> str:
        kept.append(match.group(0))
        word = f"dgjt{len(kept) - 1}q"
        inside_tag = source.rfind("<", 0, match.start()) > source.rfind(">", 0, match.start())
        return word if match.group(0).startswith("{{") or inside_tag else f"<!--{word}-->"

    return _JINJA.sub(swap, source), kept


def inline_css(source: str, css: str) -> str:
    """`source` (a Jinja HTML template) with `css` applied as inline styles."""
    protected, kept = _protect(source)
    if "<html" in source.lower():
        inlined = css_inline.CSSInliner(keep_style_tags=True, load_remote_stylesheets=False).inline(protected)
    else:
        inlined = css_inline.inline_fragment(protected, css)
    return _PLACEHOLDER.sub(lambda match: kept[int(match.group(1))], inlined)


class InliningLoader(jinja2.FileSystemLoader):
    """A file loader that checks each template's syntax on the file as written, then
    hands Jinja the source with the CSS of `base.html` inlined."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self._css: str | None = None

    def stylesheet(self, environment: jinja2.Environment) -> str:
        if self._css is None:
            source = super().get_source(environment, "base.html")[0]
            self._css = "\n".join(_STYLE.findall(source))
        return self._css

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        source, filename, uptodate = super().get_source(environment, template)
        if not template.endswith(".html"):
            return source, filename, uptodate
        environment.parse(source, template, filename)  # errors name the line as written
        return inline_css(source, self.stylesheet(environment)), filename, uptodate


@dataclass(frozen=True)
class Templates:
    html: jinja2.Template
    text: jinja2.Template
    empty_html: jinja2.Template
    empty_text: jinja2.Template
    folder: Path
    html_lines_matter: bool = False  # some HTML template has <pre>, CSS white-space...: keep its lines


def make_environment(folder: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=InliningLoader(folder),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        keep_trailing_newline=True,
    )


def template_error(error: Exception, folder: Path) -> RenderError:
    """A `RenderError` naming the template file and line an error points at."""
    if isinstance(error, jinja2.TemplateSyntaxError):
        return RenderError(
            f"template {error.filename or error.name}, line {error.lineno}: {error.message}",
            hint="fix the template, or remove mail.templates_dir to use the built-in ones",
        )
    if isinstance(error, jinja2.TemplateNotFound):
        return RenderError(
            f"template {error.name} not found in {folder}", hint=f"it needs: {', '.join(TEMPLATE_NAMES)}"
        )
    where = ""
    trace = error.__traceback__
    while trace is not None:
        filename = trace.tb_frame.f_code.co_filename
        if filename.startswith(str(folder)):
            where = f"{filename}, line {trace.tb_lineno}: "
        trace = trace.tb_next
    return RenderError(f"template {where}{error}", hint="fix the template, or remove mail.templates_dir")


def load_templates(mail: MailSettings, *, check: Callable[[Templates], Any] | None = None) -> Templates:
    """Load and compile the templates now; `check` (a trial render) runs before returning,
    so a template that does not load or render fails at start-up with file and line."""
    folder = templates_dir(mail)
    environment = make_environment(folder)
    try:
        templates = Templates(
            html=environment.get_template("digest.html"),
            text=environment.get_template("digest.txt"),
            empty_html=environment.get_template("empty.html"),
            empty_text=environment.get_template("empty.txt"),
            folder=folder,
            html_lines_matter=any(lines_matter(path.read_text(errors="replace")) for path in folder.glob("*.html")),
        )
        if check is not None:
            check(templates)
    except (jinja2.TemplateError, css_inline.InlineError, TypeError, AttributeError, KeyError, ValueError) as error:
        raise template_error(error, folder) from None
    return templates
