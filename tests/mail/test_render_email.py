"""The rendered email: golden files, escaping, header safety, size, templates, DKIM."""

from __future__ import annotations

import difflib
import email
import email.policy
import html
import os
import re
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from digestd.config import MailSettings, WebSettings
from digestd.errors import ConfigError, InputError, RenderError
from digestd.mail.message import build_mime
from digestd.mail.paper_view import shorten_authors, trim_abstract
from digestd.mail.render import HTML_LIMIT, SHORTENED_NOTE, make_email_builder
from digestd.mail.templates import templates_dir
from digestd.mail.tokens import TokenSigner
from digestd.records import Digest, PaperRecord, Pick, Profile, Section

GOLDEN = Path(__file__).resolve().parent / "golden"
NOW = datetime(2026, 11, 30, 8, 0, 5, tzinfo=UTC)
START = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
MAIL = MailSettings(from_="Paper Digest <digest@example.org>", base_url="https://digest.example.org")
SECRET = "golden-secret"
PROFILE = Profile(subscriber_id=42, email="ada@example.org", name="Ada Lovelace", link_key="golden-link-key")


def paper(
    pid: str, title: str, *, authors: tuple[str, ...] = ("Grace Hopper",), abstract: str = "", **kw: object
) -> PaperRecord:
    return PaperRecord(
        id=pid, title=title, abstract=abstract or f"An abstract about {title.lower()}.", authors=authors, **kw
    )  # type: ignore[arg-type]


def golden_digest() -> Digest:
    many = tuple(f"Author{n} Person{n}" for n in range(15))
    long_abstract = (
        "Graph neural networks pass messages along edges. We show that a simple change to the aggregation "
        "step makes them provably more expressive, matching the Weisfeiler-Leman test on every benchmark we tried. "
    ) * 5
    picks_a = (
        Pick(
            paper(
                "2611.00001",
                "Expressive message passing for graphs",
                authors=("Ada Smith", "Bob Jones"),
                abstract=long_abstract,
            ),
            0.91,
            ("matched: graph neural networks",),
        ),
        Pick(
            paper("2611.00002", "A survey of everything with many authors", authors=many),
            0.55,
            ("matched: graph neural networks", "close to your seed: Deep Sets"),
        ),
    )
    picks_b = (
        Pick(
            paper("doi:10.1000/xyz", "Diffusion models without a PDF link", authors=("Noether, Emmy",)),
            0.73,
            ("matched: diffusion models",),
        ),
    )
    sections = (Section("Graph learning", picks_a), Section("Generative models", picks_b))
    return Digest(PROFILE, START, NOW, sections, candidates=321, generated_at=NOW)


def scrub(data: bytes) -> str:
    """The message as text with the volatile parts (DKIM signature and time) replaced."""
    text = data.decode("ascii").replace("\r\n", "\n")
    text = re.sub(r"(DKIM-Signature:.*?)(\n\S)", lambda m: "DKIM-Signature: <scrubbed>" + m.group(2), text, flags=re.S)
    return text


def check_golden(name: str, data: bytes) -> None:
    path = GOLDEN / name
    actual = scrub(data)
    if os.environ.get("DIGESTD_REGENERATE_GOLDEN") == "1":
        path.write_text(actual, encoding="ascii", newline="\n")
        return
    expected = path.read_text(encoding="ascii")
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), str(path), "rendered"))
        pytest.fail(
            f"{name} differs from the golden file (DIGESTD_REGENERATE_GOLDEN=1 rewrites it):\n{diff}", pytrace=False
        )


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_digest_matches_golden_eml() -> None:
    builder = make_email_builder(MAIL, secret_key=SECRET)
    check_golden("digest.eml", builder.build(golden_digest(), period="2026-11-30", now=NOW).data)


def test_empty_digest_matches_golden_eml() -> None:
    builder = make_email_builder(MAIL, secret_key=SECRET)
    empty = Digest(PROFILE, START, NOW, (), candidates=87, generated_at=NOW)
    check_golden("digest-empty.eml", builder.build(empty, period="2026-11-30", now=NOW).data)


def test_structure_and_headers() -> None:
    built = make_email_builder(MAIL, secret_key=SECRET).build(golden_digest(), period="2026-11-30", now=NOW)
    message = parse(built.data)
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["Subject"] == "Your paper digest for 30 Nov 2026: 3 papers"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    urls = re.findall(r"<([^>]+)>", message["List-Unsubscribe"])
    assert urls[0].startswith("https://digest.example.org/unsubscribe/") and urls[1].startswith(
        "mailto:unsubscribe@example.org"
    )
    token = TokenSigner(SECRET).verify(urls[0].rsplit("/", 1)[1], link_key="golden-link-key", kind="unsubscribe")
    assert token.subscriber_id == 42
    assert built.paper_ids == ("2611.00001", "doi:10.1000/xyz", "2611.00002")
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert 'style="' in html and "prefers-color-scheme: dark" in html and 'name="viewport"' in html
    rate = re.findall(r"https://digest.example.org/rate/([\w.-]+)", html)
    assert TokenSigner(SECRET).verify(rate[0], link_key="golden-link-key", kind="rate").paper_id == "2611.00001"


def test_the_email_wears_the_sites_name_colour_and_logo(tmp_path: Path) -> None:
    logo = tmp_path / "logo.svg"
    logo.write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    web = WebSettings(site_name="  Lab\nPapers ", accent_color="#7a3e9d", logo_file=str(logo))
    built = make_email_builder(MAIL, secret_key=SECRET, web=web).build(golden_digest(), period="2026-11-30", now=NOW)
    message = parse(built.data)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert text.splitlines()[0] == "Lab Papers"
    page = " ".join(message.get_body(("html",)).get_content().split())  # type: ignore[union-attr]
    assert re.search(r'<p class="site"[^>]*><img src="https://digest.example.org/logo" alt="" height="28"[^>]*>', page)
    assert "Lab Papers</p>" in page
    titles = re.findall(r'<h3 class="title"[^>]*><a href="[^"]+" style="([^"]+)"', page)
    assert titles and all("color: #7a3e9d" in style for style in titles), titles  # inlined from the accent
    plain = make_email_builder(MAIL, secret_key=SECRET).build(golden_digest(), period="2026-11-30", now=NOW)
    assert "/logo" not in plain.data.decode() and b"Paper digest" in plain.data  # the defaults: no logo


def test_a_colour_that_is_not_one_is_refused_with_the_settings(tmp_path: Path) -> None:
    from digestd.config import load_settings

    path = tmp_path / "digestd.toml"
    path.write_text('[web]\naccent_color = "red; } body { display: none"\n')
    with pytest.raises(ConfigError, match=re.escape("web.accent_color = 'red; } body { display: none' is not allowed")):
        load_settings(path, environ={})


def test_message_id_is_deterministic_per_subscriber_and_period() -> None:
    builder = make_email_builder(MAIL, secret_key=SECRET)
    ids = [
        builder.build(golden_digest(), period=p, now=NOW).message_id for p in ("2026-11-30", "2026-11-30", "2026-12-07")
    ]
    assert ids[0] == ids[1] != ids[2]


def test_titles_are_shown_not_run_and_inject_no_header() -> None:
    evil = paper("2611.00009", "<script>alert(1)</script> {{ 7*7 }} {% if 1 %}x{% endif %}\r\nBcc: victim@example.com")
    profile = replace(PROFILE, name="Eve\r\nBcc: victim@example.com")
    digest = Digest(
        profile, START, NOW, (Section("S\nBcc: a@b", (Pick(evil, 1.0, ("x\r\nBcc: c@d",)),)),), candidates=1
    )
    data = make_email_builder(MAIL, secret_key=SECRET).build(digest, period="2026-11-30", now=NOW).data
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    assert not re.search(r"^bcc:", head, flags=re.I | re.M)
    message = parse(data)
    assert message["Bcc"] is None
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; {{ 7*7 }} {% if 1 %}x{% endif %}" in html
    assert "<script>" not in html and "49" not in html
    assert "<script>alert(1)</script> {{ 7*7 }}" in text


@pytest.mark.parametrize("count", [60, 200])
def test_large_digest_is_shortened_below_the_limit(count: int) -> None:
    picks = tuple(
        Pick(paper(f"2611.{i:05d}", f"Paper {i}", abstract="word " * 600), 1 - i / 1000, ("matched: x",))
        for i in range(count)
    )
    digest = Digest(PROFILE, START, NOW, (Section("All", picks),), candidates=count)
    built = make_email_builder(MAIL, secret_key=SECRET).build(digest, period="2026-11-30", now=NOW)
    html = parse(built.data).get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert len(html.encode()) <= HTML_LIMIT
    html = " ".join(html.split())  # a line break in HTML text is a space (lines are packed)
    assert SHORTENED_NOTE in html
    assert html.count('class="paper"') == len(built.paper_ids)
    if count == 200:
        assert f"{count - len(built.paper_ids)} more papers matched but were left out" in html
        assert built.paper_ids == tuple(f"2611.{i:05d}" for i in range(len(built.paper_ids)))


def test_authors_and_abstracts_are_shortened_sensibly() -> None:
    assert shorten_authors(("Ada Lovelace",)) == "A. Lovelace"
    assert shorten_authors(("Ada Lovelace", "Noether, Emmy")) == "A. Lovelace and E. Noether"
    assert (
        shorten_authors(("Jean-Pierre Serre", "Ludwig van Beethoven", "Plato", "Li Wei"))
        == "J.-P. Serre, L. van Beethoven, Plato and L. Wei"
    )
    assert shorten_authors(tuple(f"A{i} Smith" for i in range(15))) == "A. Smith, A. Smith, A. Smith, … and 12 others"
    assert trim_abstract("One. Two three four five six seven.", 20) == "One. Two three four …"
    assert trim_abstract("A first sentence here. Second one goes on and on.", 30) == "A first sentence here."
    assert trim_abstract("short", 100) == "short"


def _copy_templates(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    shutil.copytree(templates_dir(MailSettings()), folder)
    return folder


def test_a_broken_template_fails_at_start_up_with_file_and_line(tmp_path: Path) -> None:
    folder = _copy_templates(tmp_path)
    lines = (folder / "digest.html").read_text().splitlines()
    lines[4] = "{% for x in %}"
    (folder / "digest.html").write_text("\n".join(lines))
    with pytest.raises(RenderError, match=r"digest\.html, line 5"):
        make_email_builder(replace(MAIL, templates_dir=str(folder)), secret_key=SECRET)


def test_an_unknown_variable_fails_at_start_up_with_file_and_line(tmp_path: Path) -> None:
    folder = _copy_templates(tmp_path)
    source = (folder / "digest.txt").read_text().replace("{{ intro }}", "{{ intro_typo }}")
    (folder / "digest.txt").write_text(source)
    with pytest.raises(RenderError, match=r"digest\.txt, line 4: 'intro_typo' is undefined"):
        make_email_builder(replace(MAIL, templates_dir=str(folder)), secret_key=SECRET)


def dkim_mail(tmp_path: Path) -> tuple[MailSettings, bytes]:
    """Mail settings that sign with a new RSA key (written to `tmp_path`), and its public key (DER)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "dkim.pem").write_bytes(pem)
    return replace(MAIL, dkim_selector="d2026", dkim_key_file=str(tmp_path / "dkim.pem")), public


def test_dkim_signature_covers_the_list_headers_and_verifies(tmp_path: Path) -> None:
    mail, public = dkim_mail(tmp_path)
    data = make_email_builder(mail, secret_key=SECRET).build(golden_digest(), period="2026-11-30", now=NOW).data
    record = b"v=DKIM1; k=rsa; p=" + __import__("base64").b64encode(public)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"d2026._domainkey.example.org."
        return record

    assert dkim.verify(data, dnsfunc=dns)
    signed = re.search(rb"h=([^;]+);", data.replace(b"\r\n ", b"")).group(1).lower()  # type: ignore[union-attr]
    names = [name.strip() for name in signed.split(b":")]
    for header in (
        b"from",
        b"to",
        b"subject",
        b"date",
        b"message-id",
        b"list-id",
        b"list-unsubscribe",
        b"list-unsubscribe-post",
    ):
        assert header in names
    check_golden("digest-dkim.eml", data)


def test_dkim_over_signing_a_copy_with_one_more_from_or_subject_fails(tmp_path: Path) -> None:
    """The visible headers are signed once more than they occur (RFC 6376 8.15): dkimpy, an
    independent verifier, refuses a copy that gained a From or Subject on the way."""
    mail, public = dkim_mail(tmp_path)
    data = make_email_builder(mail, secret_key=SECRET).build(golden_digest(), period="2026-11-30", now=NOW).data
    record = b"v=DKIM1; k=rsa; p=" + __import__("base64").b64encode(public)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return record

    assert dkim.verify(data, dnsfunc=dns)
    signed = re.search(rb"h=([^;]+);", data.replace(b"\r\n ", b"").replace(b"\r\n\t", b"")).group(1)  # type: ignore[union-attr]
    names = [name.strip().lower() for name in signed.split(b":")]
    for header in (b"from", b"to", b"subject", b"date", b"message-id", b"list-id", b"list-unsubscribe"):
        assert names.count(header) == 2, header
    for added in (b"From: Your Bank <security@bank.example>\r\n", b"Subject: Urgent: verify your account\r\n"):
        head, _, body = data.partition(b"\r\n\r\n")
        assert not dkim.verify(head + b"\r\n" + added.rstrip(b"\r\n") + b"\r\n\r\n" + body, dnsfunc=dns)
        assert not dkim.verify(added + data, dnsfunc=dns)


def test_an_unreadable_dkim_key_fails_at_start_up(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("not a key")
    with pytest.raises(ConfigError, match="dkim_key_file"):
        make_email_builder(replace(MAIL, dkim_selector="s", dkim_key_file=str(tmp_path / "bad.pem")), secret_key=SECRET)


def test_html_part_is_7bit_ascii_and_reads_as_the_original_characters() -> None:
    title = "Schrödinger bridges à la Émilie — ∂ₜ p = Δp"
    digest = Digest(PROFILE, START, NOW, (Section("Physics", (Pick(paper("2611.00010", title), 1.0, ("x",)),)),), 1)
    data = make_email_builder(MAIL, secret_key=SECRET).build(digest, period="2026-11-30", now=NOW).data
    assert data.isascii() and max(map(len, data.split(b"\r\n"))) <= 998
    html_part = parse(data).get_body(("html",))
    assert html_part is not None and html_part["Content-Transfer-Encoding"] == "7bit"
    assert title in html.unescape(html_part.get_content())
    text_part = parse(data).get_body(("plain",))
    assert text_part is not None and title in text_part.get_content()  # quoted-printable: not ASCII


def test_an_html_line_that_cannot_be_broken_falls_back_to_quoted_printable() -> None:
    title = "x" * 1200  # no space to break the line at
    digest = Digest(PROFILE, START, NOW, (Section("S", (Pick(paper("2611.00011", title), 1.0, ("x",)),)),), 1)
    data = make_email_builder(MAIL, secret_key=SECRET).build(digest, period="2026-11-30", now=NOW).data
    assert max(map(len, data.split(b"\r\n"))) <= 998
    html_part = parse(data).get_body(("html",))
    assert html_part is not None and html_part["Content-Transfer-Encoding"] == "quoted-printable"
    assert title in html_part.get_content()


def test_a_long_html_line_is_broken_at_a_space() -> None:
    title = " ".join(f"word{i}" for i in range(250))  # ~2,000 characters on one line
    digest = Digest(PROFILE, START, NOW, (Section("S", (Pick(paper("2611.00012", title), 1.0, ("x",)),)),), 1)
    data = make_email_builder(MAIL, secret_key=SECRET).build(digest, period="2026-11-30", now=NOW).data
    assert max(map(len, data.split(b"\r\n"))) <= 998
    html_part = parse(data).get_body(("html",))
    assert html_part is not None and html_part["Content-Transfer-Encoding"] == "7bit"
    assert title in " ".join(html_part.get_content().split())  # a line break in HTML text is a space


def physics_digest(title: str, pid: str = "2611.00013") -> Digest:
    return Digest(PROFILE, START, NOW, (Section("Physics", (Pick(paper(pid, title), 1.0, ("x",)),)),), 1)


def test_for_a_relay_with_8bitmime_the_text_part_is_utf8_as_it_is() -> None:
    title = "Schrödinger bridges à la Émilie — ∂ₜ p = Δp"
    builder = make_email_builder(MAIL, secret_key=SECRET).for_relay(eight_bit=True)
    email_ = builder.build(physics_digest(title), period="2026-11-30", now=NOW)
    text_part = parse(email_.data).get_body(("plain",))
    assert email_.eight_bit and text_part is not None and text_part["Content-Transfer-Encoding"] == "8bit"
    assert title.encode() in email_.data  # readable in the raw message, no =C3=B6
    assert title in text_part.get_content()
    html_part = parse(email_.data).get_body(("html",))
    assert html_part is not None and html_part["Content-Transfer-Encoding"] == "7bit"
    ascii_only = builder.build(physics_digest("Plain title", "2611.00014"), period="2026-11-30", now=NOW)
    assert not ascii_only.eight_bit and ascii_only.data.isascii()  # nothing to send 8bit


def test_a_text_line_too_long_for_smtp_stays_quoted_printable_even_with_8bitmime() -> None:
    text = "é" + "x" * 1200  # SMTP allows 998 octets per line; 8bit cannot break a line
    data, eight_bit = build_mime(["Subject: s"], text, "<p>x</p>", boundary="=_b", eight_bit=True)
    assert not eight_bit and data.isascii() and max(map(len, data.split(b"\r\n"))) <= 998
    text_part = parse(data).get_body(("plain",))
    assert text_part is not None and text_part["Content-Transfer-Encoding"] == "quoted-printable"
    assert text_part.get_content().rstrip("\n") == text


def test_a_dkim_signed_message_stays_7bit_even_with_8bitmime(tmp_path: Path) -> None:
    mail, _ = dkim_mail(tmp_path)
    builder = make_email_builder(mail, secret_key=SECRET).for_relay(eight_bit=True)
    email_ = builder.build(physics_digest("Schrödinger"), period="2026-11-30", now=NOW)
    assert not email_.eight_bit and email_.data.isascii()


def test_html_lines_are_packed_for_relays_but_read_the_same() -> None:
    """A relay's work goes by the line: the HTML part's lines are joined with spaces up to
    SMTP's 998 octets, which HTML reads as the same whitespace."""
    data = make_email_builder(MAIL, secret_key=SECRET).build(golden_digest(), period="2026-11-30", now=NOW).data
    html_part = parse(data).get_body(("html",))
    assert html_part is not None
    sent_lines = html_part.get_payload(decode=True).split(b"\n")  # type: ignore[union-attr]
    assert len(sent_lines) <= 12 and max(map(len, sent_lines)) <= 1000
    _, rendered, _ = make_email_builder(MAIL, secret_key=SECRET).renderer.render_parts(
        golden_digest(), period="2026-11-30"
    )
    assert rendered.count("\n") > 60
    assert " ".join(html.unescape(html_part.get_content()).split()) == " ".join(html.unescape(rendered).split())


class AttributeValues(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.values: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.values += [value for _, value in attrs if value is not None]


def test_packed_html_never_breaks_a_line_inside_a_tag(tmp_path: Path) -> None:
    """A packed line ends between tags or in text, never inside an attribute: a `title`
    tooltip or an `alt` text with a line break in it would show one."""
    folder = tmp_path / "templates"
    shutil.copytree(templates_dir(MAIL), folder)
    digest_html = folder / "digest.html"
    digest_html.write_text(
        digest_html.read_text().replace(
            '<a href="{{ pick.paper.abs_url }}"',
            '<a title="Open {{ pick.paper.title }} on arXiv" href="{{ pick.paper.abs_url }}"',
        )
    )
    mail = replace(MAIL, templates_dir=str(folder))
    data = make_email_builder(mail, secret_key=SECRET).build(golden_digest(), period="2026-11-30", now=NOW).data
    html_part = parse(data).get_body(("html",))
    assert html_part is not None
    content = html_part.get_content()
    assert content.count("\n") > 5  # packed into several lines
    parser = AttributeValues()
    parser.feed(content)
    titles = [value for value in parser.values if value.startswith("Open ")]
    assert len(titles) == len(golden_digest().picks)
    assert [value for value in parser.values if "\n" in value] == []


def test_templates_with_preformatted_text_keep_their_lines(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    shutil.copytree(templates_dir(MAIL), folder)
    digest_html = folder / "digest.html"
    digest_html.write_text(
        digest_html.read_text().replace("{% block content %}", "{% block content %}<pre>one\ntwo</pre>")
    )
    mail = replace(MAIL, templates_dir=str(folder))
    data = make_email_builder(mail, secret_key=SECRET).build(golden_digest(), period="2026-11-30", now=NOW).data
    assert b"<pre>one\r\ntwo</pre>" in data
    html_part = parse(data).get_body(("html",))
    assert html_part is not None and len(html_part.get_content().splitlines()) > 60


def test_a_non_ascii_local_part_is_written_as_utf8_and_still_verifies(tmp_path: Path) -> None:
    """RFC 6532: with SMTPUTF8 the address is written as it is; the name is still encoded."""
    mail, public = dkim_mail(tmp_path)
    profile = replace(PROFILE, email="zoë@inbox.example.com", name='Zoë "Z" Müller')
    built = make_email_builder(mail, secret_key=SECRET).build(
        replace(golden_digest(), profile=profile), period="2026-11-30", now=NOW
    )
    assert (built.recipient, built.smtputf8) == ("zoë@inbox.example.com", True)
    assert re.search(rb"\r\nTo: =\?utf-8\?b\?[^?]+\?= <zo\xc3\xab@inbox.example.com>\r\n", built.data)
    parsed = email.message_from_string(built.data.decode(), policy=email.policy.default)
    assert parsed["To"].addresses[0].display_name == 'Zoë "Z" Müller'
    record = b"v=DKIM1; k=rsa; p=" + __import__("base64").b64encode(public)
    assert dkim.verify(built.data, dnsfunc=lambda name, timeout=5: record)


def test_a_domain_stored_in_unicode_goes_out_in_its_ascii_form() -> None:
    profile = replace(PROFILE, email="ascii@bücher.example.com", name="Ascii")
    built = make_email_builder(MAIL, secret_key=SECRET).build(
        replace(golden_digest(), profile=profile), period="2026-11-30", now=NOW
    )
    assert (built.recipient, built.smtputf8) == ("ascii@xn--bcher-kva.example.com", False)
    assert b"To: Ascii <ascii@xn--bcher-kva.example.com>\r\n" in built.data and built.data.isascii()


@pytest.mark.parametrize("stored", ["no-at-sign.example.org", "a@b.example.org\r\nRCPT TO:<c@d.example>", "a b@c.org"])
def test_a_stored_value_that_is_not_an_address_is_refused(stored: str) -> None:
    builder = make_email_builder(MAIL, secret_key=SECRET)
    with pytest.raises(InputError, match="is not a valid address"):
        builder.build(replace(golden_digest(), profile=replace(PROFILE, email=stored)), period="2026-11-30", now=NOW)


def test_a_non_ascii_sender_address_fails_at_start_up() -> None:
    with pytest.raises(ConfigError, match="must be ASCII"):
        make_email_builder(replace(MAIL, from_="Digest <digest@bücher.example.com>"), secret_key=SECRET)


ESCAPES = [
    "{{ cycler.__init__.__globals__.os.system('touch MARKER') }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{% if digest.is_empty %}{{ lipsum.__globals__['os'].system('touch MARKER') }}{% endif %}",  # never on the sample
    "{{ (cycler|attr('__in' ~ 'it__')).__call__ }}",  # spelled at run time: the sandbox refuses it then
]


@pytest.mark.parametrize("escape", ESCAPES)
def test_a_template_reaching_for_python_internals_fails_at_start_up_and_runs_nothing(
    tmp_path: Path, escape: str
) -> None:
    """Templates run sandboxed: no `__class__`, `__globals__`, ... so no way to `os`."""
    folder = tmp_path / "templates"
    shutil.copytree(templates_dir(MAIL), folder)
    marker = tmp_path / "ran"
    (folder / "digest.txt").write_text((folder / "digest.txt").read_text() + escape.replace("MARKER", str(marker)))
    with pytest.raises(RenderError, match=r"digest\.txt.*(unsafe|not available to templates)"):
        make_email_builder(replace(MAIL, templates_dir=str(folder)), secret_key=SECRET)
    assert not marker.exists()


def test_with_a_bounce_address_the_envelope_sender_and_mailto_name_the_delivery() -> None:
    from digestd.mail.tokens import BOUNCE

    mail = replace(MAIL, bounce_address="bounces@digest.example.org")
    builder = make_email_builder(mail, secret_key=SECRET)
    sent = builder.build(golden_digest(), period="2026-11-30", now=NOW, delivery_id=77)
    signer = TokenSigner(SECRET)
    assert sent.sender == f"bounces+{signer.sign_return(BOUNCE, 77, PROFILE.link_key)}@digest.example.org"
    message = email.message_from_bytes(sent.data, policy=email.policy.default)
    assert message["From"] == "Paper Digest <digest@example.org>"
    unsubscribe = signer.sign_return("unsubscribe", 77, PROFILE.link_key)
    assert f"<mailto:unsubscribe+{unsubscribe}@digest.example.org?subject=unsubscribe>" in str(
        message["List-Unsubscribe"]
    )
    preview = builder.build(golden_digest(), period="2026-11-30", now=NOW)  # no ledger row: as before
    assert preview.sender == "digest@example.org"
    for bad in ("bounces+x@digest.example.org", "bounces", "bö@digest.example.org"):
        with pytest.raises(ConfigError, match="bounce_address"):
            make_email_builder(replace(MAIL, bounce_address=bad), secret_key=SECRET)


# SpamAssassin 4's rawbody rule __HTML_SINGLET (72_active.cf): a lone letter or character
# reference between two tags; more than 20 of them is HTML_SINGLET_MANY (+1.0 by default).
SPAMASSASSIN_SINGLET = re.compile(r'>\s*(?:[a-z"]|&#(?:\d+|x[0-9a-f]+);)\s*<', re.I)


def test_a_20_paper_digest_stays_under_spamassassins_html_singlet_many() -> None:
    picks = tuple(
        Pick(
            paper(f"2611.{n:05d}", f"Paper number {n}", pdf_url=f"https://arxiv.org/pdf/2611.{n:05d}"),
            0.5,
            ("matched: x",),
        )
        for n in range(20)
    )
    digest = Digest(PROFILE, START, NOW, (Section("Everything", picks),), candidates=100, generated_at=NOW)
    data = make_email_builder(MAIL, secret_key=SECRET).build(digest, period="2026-11-30", now=NOW).data
    html = email.message_from_bytes(data, policy=email.policy.default).get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert len(SPAMASSASSIN_SINGLET.findall(html)) <= 20
    spaced = " ".join(html.split())  # lines are broken at spaces
    assert spaced.count("More like this</a>&nbsp;&nbsp;&nbsp; <a") == 20  # the links are still set apart
