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

Templates run in Jinja's immutable sandbox: an operator's template is a file to fill in,
not code, so it reaches no Python internals (`__class__`, `__globals__`, ... the way to
`os`) and changes nothing it is given. `SandboxedLoader` refuses such names when a
template loads, so that one in any branch fails at start-up; the sandbox refuses the rest
(names spelled at run time) when it runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import css_inline
import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

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


def _internal_name(node: nodes.Node) -> str | None:
    """The `__dunder__` name a node reaches for (`x.__class__`, `x['__class__']`,
    `x|attr('__class__')`), if any."""
    if isinstance(node, nodes.Getattr):
        name: object = node.attr
    elif isinstance(node, nodes.Getitem):
        name = node.arg.value if isinstance(node.arg, nodes.Const) else None
    elif isinstance(node, nodes.Filter) and node.name == "attr" and node.args:
        name = node.args[0].value if isinstance(node.args[0], nodes.Const) else None
    else:
        name = None
    return name if isinstance(name, str) and name.startswith("__") else None


class SandboxedLoader(jinja2.FileSystemLoader):
    """A file loader that checks each template as written: its syntax, and no Python
    internals (which the sandbox would refuse only when the line runs)."""

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        source, filename, uptodate = super().get_source(environment, template)
        tree = environment.parse(source, template, filename)  # errors name the line as written
        for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
            if name := _internal_name(node):
                message = f"{name!r} is not available to templates (they run in a sandbox)"
                raise jinja2.TemplateSyntaxError(message, node.lineno, template, filename)
        return source, filename, uptodate


class InliningLoader(SandboxedLoader):
    """A sandboxed loader that hands Jinja HTML templates with the CSS of `base.html` inlined."""

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
        return inline_css(source, self.stylesheet(environment)), filename, uptodate


@dataclass(frozen=True)
class Templates:
    html: jinja2.Template
    text: jinja2.Template
    empty_html: jinja2.Template
    empty_text: jinja2.Template
    folder: Path
    html_lines_matter: bool = False  # some HTML template has <pre>, CSS white-space...: keep its lines


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, remembering its verdict on each attribute per (type,
    name): the verdict depends on nothing else, and reaching it (a dozen `isinstance`
    checks) for each of the ~900 attributes an email reads tripled the render time.
    An attribute known safe whose value is data (not callable: the sandbox wraps only
    `str.format` methods) is returned at once, as the sandbox itself would return it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._safe: dict[type, set[str]] = {}  # per type, the attributes found safe

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        safe = self._safe.setdefault(type(obj), set())
        if attr in safe:
            return True
        if super().is_safe_attribute(obj, attr, value):
            safe.add(attr)
            return True
        return False

    def getattr(self, obj: Any, attribute: str) -> Any:
        if attribute in self._safe.get(type(obj), ()):
            value = getattr(obj, attribute, _MISSING)
            if not callable(value) and value is not _MISSING:
                return value
        return super().getattr(obj, attribute)


_MISSING = object()


def make_environment(folder: Path) -> jinja2.Environment:
    return Sandbox(
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
