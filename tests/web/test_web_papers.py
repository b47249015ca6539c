"""The public paper page over real HTTP: `/`, `/papers/YYYY-MM-DD`, filter, search, the face.

One migrated SQLite file and one real server (uvicorn on loopback) for the module; the
papers are written once, on three announcement days.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from web_support import Outbox, RunningWeb, make_settings

from digestd.errors import ConfigError
from digestd.records import PaperRecord
from digestd.store import make_engine, migrate, open_session, save_papers
from digestd.web.app import create_app

SEEN = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
LONG_ABSTRACT = (
    "We study message passing on sparse graphs. "
    + "The method propagates labels along edges and learns the weights from a few examples. " * 6
    + "The final sentence only shows after more."
)
LOGO = b'<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><circle cx="14" cy="14" r="12"/></svg>'


def paper(paper_id: str, day: date | None, title: str, categories: tuple[str, ...], **extra: object) -> PaperRecord:
    fields: dict[str, object] = {
        "abstract": f"An abstract about {title.lower()}.",
        "authors": ("Ada Lovelace", "Alan Turing"),
        **extra,
    }
    return PaperRecord(id=paper_id, title=title, categories=categories, published=day, **fields)  # type: ignore[arg-type]


PAPERS = [
    paper(
        "2611.00001",
        date(2026, 11, 30),
        "Graph Networks for Sparse Labels",
        ("cs.LG", "stat.ML"),
        abstract=LONG_ABSTRACT,
        authors=("Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov"),
    ),
    paper("2611.00002", date(2026, 11, 30), "Robots That Fold Laundry", ("cs.RO",), popularity=42),
    paper("2611.00003", date(2026, 11, 30), "Diffusion Models for Galaxies", ("astro-ph.GA", "cs.LG")),
    paper("2611.00004", date(2026, 11, 27), "An Older Paper on Quantum Codes", ("quant-ph",)),
    paper("2611.00005", None, "A Paper Without a Date", ("cs.CL",)),  # listed under the day it was first seen
    paper("2611.00006", date(2026, 11, 20), "The Oldest Paper", ("math.CO",)),
]


@pytest.fixture(scope="module")
def module_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('papers') / 'digestd.sqlite3'}")
    migrate(engine)
    with open_session(engine) as session:
        save_papers(session, PAPERS, now=datetime(2026, 11, 25, 6, 0, tzinfo=UTC))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def logo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("face") / "logo.svg"
    path.write_bytes(LOGO)
    return path


@pytest.fixture(scope="module")
def site(module_engine: Engine, logo: Path) -> Iterator[RunningWeb]:
    def settings(base_url: str):  # type: ignore[no-untyped-def]
        return make_settings(base_url, site_name="Lab Papers", accent_color="#7a3e9d", logo_file=str(logo))

    with RunningWeb(settings, module_engine, Outbox()) as running:
        yield running


def get(site: RunningWeb, path: str, **params: str) -> httpx.Response:
    return httpx.get(site.base_url + path, params=params or None, timeout=60)


def titles(page: httpx.Response) -> list[str]:
    return re.findall(r'<h2 class="paper-title"><a href="[^"]+">([^<]+)</a>', page.text)


def test_the_front_page_lists_the_latest_day(site: RunningWeb) -> None:
    page = get(site, "/")
    assert page.status_code == 200
    assert "Papers of Monday, 30 November 2026" in page.text
    # the most upvoted first, then by id; other days' papers are not on it
    latest = ["Robots That Fold Laundry", "Graph Networks for Sparse Labels", "Diffusion Models for Galaxies"]
    assert titles(page) == latest
    assert '<a href="https://arxiv.org/abs/2611.00001">Graph Networks for Sparse Labels</a>' in page.text
    assert '<a class="pdf" href="https://arxiv.org/pdf/2611.00001">PDF</a>' in page.text
    assert "A. Lovelace, A. Turing, G. Hopper, … and 2 others" in page.text  # shortened authors
    assert "▲ 42 upvotes" in page.text  # Hugging Face upvotes, only where a source gave them
    assert page.text.count("upvote") == 1 + page.text.count("Upvotes on Hugging Face")
    assert ">Machine Learning</a>" in page.text and ">Robotics</a>" in page.text  # categories by name
    assert ">cs.LG</a>" not in page.text
    head, _, rest = page.text.partition('<span class="more">more</span>')
    assert "We study message passing on sparse graphs." in head and "only shows after more" in rest
    assert 'href="/subscribe"' in page.text  # the offer
    assert 'href="/papers/2026-11-27">Older: 27 November 2026' in page.text


def test_older_days_have_their_own_page(site: RunningWeb) -> None:
    page = get(site, "/papers/2026-11-27")
    assert page.status_code == 200
    assert titles(page) == ["An Older Paper on Quantum Codes"]
    assert 'href="/papers/2026-11-30">← Newer: 30 November 2026' in page.text
    assert 'href="/papers/2026-11-25">Older: 25 November 2026' in page.text
    assert titles(get(site, "/papers/2026-11-25")) == ["A Paper Without a Date"]  # the day first seen


def test_filter_by_category_and_search(site: RunningWeb) -> None:
    page = get(site, "/papers/2026-11-30", category="cs.LG")
    assert titles(page) == ["Graph Networks for Sparse Labels", "Diffusion Models for Galaxies"]
    assert "2 of 3 papers in Machine Learning." in page.text
    assert '<option value="cs.LG" selected>' in page.text
    page = get(site, "/papers/2026-11-30", category="cs.LG", q="GALAXIES diffusion")
    assert titles(page) == ["Diffusion Models for Galaxies"]
    assert "matching “GALAXIES diffusion”" in page.text and 'value="GALAXIES diffusion"' in page.text
    page = get(site, "/papers/2026-11-30", q="lovelace laundry")  # authors count as text
    assert titles(page) == ["Robots That Fold Laundry"]
    page = get(site, "/papers/2026-11-30", q="nothing like this")
    assert titles(page) == [] and "No paper of this day matches." in page.text
    page = get(site, "/papers/2026-11-30", category="hep-th")  # a real category with no paper that day
    assert page.status_code == 200 and "0 of 3 papers in High Energy Physics - Theory." in page.text


@pytest.mark.parametrize(
    ("path", "params", "status", "says"),
    [
        ("/papers/2026-13-45", {}, 400, "is not a date"),
        ("/papers/yesterday", {}, 400, "is not a date"),
        ("/papers/" + "9" * 5000, {}, 400, "is not a date"),
        ("/papers/1999-01-01", {}, 404, "No papers were listed on 1 January 1999."),
        ("/papers/2026-11-30", {"category": "<script>alert(1)</script>"}, 400, "is not an arXiv category"),
        ("/papers/2026-11-30", {"category": "x" * 3000}, 400, "is not an arXiv category"),
        ("/papers/2026-11-30", {"q": "graph " * 2000}, 400, "The search is too long"),
        ("/papers/2026-11-30", {"page": "abc"}, 400, "is not a page number"),
        ("/papers/2026-11-30", {"page": "-1"}, 400, "is not a page number"),
        ("/papers/2026-11-30", {"page": "9" * 400}, 400, "is not a page number"),
        ("/papers/2026-11-30", {"page": "2"}, 404, "There is no page 2 for this day."),
        ("/?q=%00%ff%fe&category=%ff", {}, 400, "is not an arXiv category"),  # not UTF-8
        ("/?q=%00%ff%fe", {}, 200, "Papers of"),
    ],
)
def test_bad_addresses_get_a_clear_page_never_a_500(
    site: RunningWeb, path: str, params: dict[str, str], status: int, says: str
) -> None:
    page = get(site, path, **params)
    assert page.status_code == status, page.text[:500]
    assert says in page.text
    assert "<script>alert" not in page.text


def test_the_face_site_name_logo_and_accent(site: RunningWeb) -> None:
    page = get(site, "/")
    assert "<title>Papers of 30 November 2026 · Lab Papers</title>" in page.text
    assert '<img src="/logo" alt="" width="28" height="28"><span>Lab Papers</span>' in page.text
    assert get(site, "/theme.css").text == ":root { --accent: #7a3e9d; }\n"
    logo = get(site, "/logo")
    assert logo.content == LOGO and logo.headers["content-type"] == "image/svg+xml"
    assert "Lab Papers" in get(site, "/subscribe").text


def test_the_sign_up_page_shows_an_example_digest(site: RunningWeb) -> None:
    page = get(site, "/subscribe")
    assert page.status_code == 200 and '<form method="post" action="/subscribe">' in page.text
    example = page.text.partition('aria-labelledby="example-heading"')[2]
    assert "What a digest looks like" in page.text and "More like this" in example


def test_a_private_site_has_no_paper_list(module_engine: Engine) -> None:
    def settings(base_url: str):  # type: ignore[no-untyped-def]
        return make_settings(base_url, public_papers=False)

    with RunningWeb(settings, module_engine, Outbox()) as running:
        front = get(running, "/")
        assert front.status_code == 200 and "Subscribe to the paper digest" in front.text
        assert "Graph Networks" not in front.text and 'href="/">Papers</a>' not in front.text
        assert get(running, "/papers/2026-11-30").status_code == 404


def test_no_papers_yet(engine: Engine) -> None:
    with RunningWeb(make_settings, engine, Outbox()) as running:
        page = get(running, "/")
        assert page.status_code == 200 and "No papers yet" in page.text


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("accent_color", "red; background: url(x)", "web.accent_color"),
        ("logo_file", "/nonexistent/logo.svg", "does not exist"),
        ("logo_file", "/etc/passwd", "use an .svg, .png or .jpg file"),
    ],
)
def test_a_bad_face_setting_stops_the_start(engine: Engine, setting: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(says)):
        create_app(make_settings(**{setting: value}), engine, send_message=Outbox())


# --- the small texts -----------------------------------------------------------------------


def test_confirming_says_when_the_first_digest_arrives(engine: Engine) -> None:
    outbox = Outbox()

    def settings(base_url: str):  # type: ignore[no-untyped-def]
        return make_settings(base_url, site_name="Lab Papers")

    with RunningWeb(settings, engine, outbox) as running, httpx.Client(base_url=running.base_url) as browser:
        form = browser.get("/subscribe").text
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', form).group(1)  # type: ignore[union-attr]
        fields = {"csrf": csrf, "email": "ada@example.org", "name": "Ada", "keywords": "graph networks"}
        fields |= {"frequency": "daily", "day": "mon", "time": "07:30", "timezone": "Europe/Berlin"}
        assert browser.post("/subscribe", data=fields).status_code == 200
        (mail,) = outbox.wait_for(1)
        assert mail["Subject"] == "Please confirm your subscription to Lab Papers"
        assert "receive Lab Papers at this address" in mail.get_content()
        assert "Ada" not in mail.get_content()  # nothing the requester typed (see web.messages)
        confirm = outbox.last_link("confirm")
        page = browser.get(confirm).text
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]
        done = browser.post(confirm, data={"csrf": csrf})
    assert done.status_code == 200 and "You are subscribed" in done.text
    first = re.search(r'Your first digest arrives on <strong id="first-digest">([^<]+)</strong>', done.text)
    assert first, done.text
    assert re.fullmatch(r"(Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day \d{1,2} \w+ 20\d\d at 07:30 \(Europe/Berlin time\)",
                        first.group(1))  # fmt: skip


def test_a_damaged_link_reads_as_a_sentence(site: RunningWeb) -> None:
    page = get(site, "/manage/not-a-token")
    assert page.status_code in (400, 404)
    message = re.search(r"<h1>[^<]+</h1>\n<p>([^<]+)</p>", page.text)
    assert message, page.text
    assert message.group(1)[0].isupper() and message.group(1).endswith("."), message.group(1)


def test_every_category_in_the_shared_data_has_a_name(corpus_path: Path) -> None:
    import gzip
    import json

    from digestd.categories import CATEGORY_NAMES, category_name

    with gzip.open(corpus_path, "rt", encoding="utf-8") as handle:
        codes = {code for line in handle for code in json.loads(line)["categories"]}
    not_arxiv = {"na"}  # what one source writes when it has no category
    assert codes - not_arxiv <= set(CATEGORY_NAMES), sorted(codes - not_arxiv - set(CATEGORY_NAMES))
    assert category_name("cs.LG") == "Machine Learning" and category_name("na") == "na"


def test_the_sign_up_form_offers_trending_papers_alone(engine: Engine) -> None:
    from sqlmodel import select
    from web_support import queue_done

    from digestd.models import Subscriber

    with RunningWeb(make_settings, engine, Outbox()) as running, httpx.Client(base_url=running.base_url) as browser:

        def post(**extra: str) -> httpx.Response:
            page = browser.get("/subscribe").text
            assert 'name="trending" value="yes"' in page
            csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]
            fields = {"csrf": csrf, "email": "ada@example.org", "frequency": "weekly", "day": "mon"}
            return browser.post("/subscribe", data=fields | {"time": "08:00", "timezone": "UTC", **extra})

        neither = post()
        assert neither.status_code == 400 and "or ask for trending papers" in neither.text
        assert post(trending="yes").status_code == 200
        queue_done(engine)
    with open_session(engine) as session:
        ada = session.scalar(select(Subscriber).where(Subscriber.email == "ada@example.org"))
        assert ada is not None and ada.trending and ada.status == "pending"
