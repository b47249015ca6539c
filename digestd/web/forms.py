"""Read the profile form (sign-up and manage pages) into a `SubscriberInput`.

Values are kept as typed so a page with an error can show the form again as it was;
`subscribers.check_input` checks them, as it does for the CLI and imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from starlette.datastructures import FormData

from digestd.config import DigestSettings
from digestd.errors import InputError
from digestd.subscribers import SubscriberInput
from digestd.validation import check_number


@dataclass
class ProfileForm:
    """The form's fields as strings, as the browser sent them."""

    email: str = ""
    name: str = ""
    keywords: str = ""
    exclude: str = ""
    categories: list[str] = field(default_factory=list)
    seeds: str = ""
    authors: str = ""  # manage page only, as are seeds and max papers
    max_papers: str = ""
    frequency: str = "weekly"
    day: str = "mon"
    time: str = "08:00"
    timezone: str = "UTC"
    timezone_chosen: bool = False  # the person (not the default) picked the timezone
    trending: bool = False  # the period's trending papers (`ranking.trending`)


def default_form(defaults: DigestSettings) -> ProfileForm:
    return ProfileForm(
        frequency=defaults.default_frequency,
        day=defaults.default_day,
        time=defaults.default_time,
        timezone=defaults.default_timezone,
    )


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def read_profile_form(form: FormData, *, with_email: bool) -> ProfileForm:
    """The submitted fields, as text (the request's size is capped by the app)."""
    categories = [value.strip() for value in form.getlist("category") if isinstance(value, str) and value.strip()]
    return ProfileForm(
        email=_text(form, "email") if with_email else "",
        name=_text(form, "name"),
        keywords=_text(form, "keywords"),
        exclude=_text(form, "exclude"),
        categories=list(dict.fromkeys(categories)),
        seeds=_text(form, "seeds"),
        authors=_text(form, "authors"),
        max_papers=_text(form, "max_papers"),
        frequency=_text(form, "frequency"),
        day=_text(form, "day"),
        time=_text(form, "time"),
        timezone=_text(form, "timezone"),
        timezone_chosen=True,
        trending=_text(form, "trending") == "yes",
    )


def to_input(form: ProfileForm, *, email: str, with_seeds: bool) -> SubscriberInput:
    """A `SubscriberInput` that sets every field of the form (empty text clears a list);
    `with_seeds`: the manage page's too (seeds, authors, max papers)."""
    if not email:
        raise InputError("email is missing: enter the address the digest should go to")
    seeds: Sequence[str] | None = [s for s in form.seeds.replace(",", " ").split() if s] if with_seeds else None
    max_papers = form.max_papers if with_seeds and form.max_papers else None
    return SubscriberInput(
        email=email,
        name=form.name,
        keywords=form.keywords,
        exclude=form.exclude,
        categories=form.categories,
        seeds=seeds,
        authors=form.authors if with_seeds else None,
        max_papers=None if max_papers is None else check_number("max papers", max_papers, whole=True),
        frequency=form.frequency or None,
        day=form.day or None,
        time=form.time or None,
        timezone=form.timezone or None,
        trending=form.trending,
    )
