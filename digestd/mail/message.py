"""The email itself: headers, MIME bytes, Message-ID and DKIM (pure functions over strings).

Messages are assembled by hand rather than with `EmailMessage`: its policy machinery
costs more than rendering the templates. The result is a standard
multipart/alternative (text first, HTML last), lines ending in CRLF as on the wire. The
text part is 7bit when it is all ASCII; otherwise UTF-8 as it is ("8bit") when the relay
offers 8BITMIME (RFC 6152) and the message is not DKIM-signed, else quoted-printable. The
HTML part is 7bit: other characters become character references (`&#233;`), which HTML
reads exactly as the characters themselves, and its lines are joined with spaces (the same
whitespace to HTML) up to SMTP's 998 octets and broken again at a space outside any tag,
unless its templates have preformatted text or CSS `white-space`. A 40 KB part is about 45
lines, where quoted-printable (76 octets a line, `=3D` for every `=`) would take 550, and
every relay reads a message line by line. An HTML line that cannot be broken falls back to
quoted-printable. Every header value passes `clean_header`, so no CR, LF or other control
character from a paper title, a name or a setting can start a header.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Sequence
from email.header import Header
from email.utils import formataddr, parseaddr
from pathlib import Path

import dkim
from email_validator import EmailNotValidError, validate_email

from digestd.config import MailSettings
from digestd.errors import ConfigError, InputError

CRLF = "\r\n"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# The headers a DKIM signature covers (RFC 8058 asks for both List-Unsubscribe headers).
# Those a reader sees or a filter trusts are listed twice ("over-signing", RFC 6376 8.15):
# the second, absent instance is signed as empty, so a copy with one more From or Subject
# added on the way no longer verifies.
OVERSIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
)
DKIM_HEADERS = (*OVERSIGNED_HEADERS, *OVERSIGNED_HEADERS, "MIME-Version", "Content-Type")


def clean_header(value: str) -> str:
    """No CR, LF or other control character may reach a header; runs of space become one."""
    return " ".join(_CONTROL.sub(" ", value).split())


def encode_header(name: str, value: str) -> str:
    """`Name: value`, RFC 2047-encoded when the value is not ASCII."""
    value = clean_header(value)
    if value.isascii():
        return f"{name}: {value}"
    return f"{name}: {Header(value, 'utf-8', header_name=name).encode(linesep=CRLF)}"


def format_address(name: str, address: str) -> str:
    return formataddr((clean_header(name), clean_header(address)), charset="utf-8")


# What `subscribers.normalise_email` stores for nearly every address: checked here without
# the cost of a full validation (a quarter of a millisecond), anything else is validated.
_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PLAIN_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+")


def envelope_address(address: str) -> tuple[str, bool]:
    """`address` as it goes into RCPT and `To:`, and whether it needs SMTPUTF8 (a non-ASCII
    local part). The domain goes in its ASCII (IDNA) form: rows stored before domains were
    normalised have `@bücher.example`. `InputError` if it is not an address at all (a bad
    value in the database), so that no CR, LF or `>` reaches an SMTP command."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return address, False
    try:
        checked = validate_email(address, check_deliverability=False)
    except EmailNotValidError as error:
        raise InputError(f"{address!r} is not a valid address: {error}") from None
    wire = f"{checked.local_part}@{checked.ascii_domain}"
    return wire, not wire.isascii()


def recipient_header(name: str, address: str) -> str:
    """`To: Name <address>`. An address that needs SMTPUTF8 is written as it is, in UTF-8
    (RFC 6532); `formataddr` refuses it, so the name is quoted or RFC 2047-encoded here."""
    if address.isascii():
        return encode_header("To", format_address(name, address))
    name = clean_header(name)
    if not name:
        return f"To: <{address}>"
    if name.isascii():
        display = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:
        display = Header(name, "utf-8", header_name="To").encode(linesep=CRLF)
    return f"To: {display} <{address}>"


def sender_address(mail: MailSettings) -> tuple[str, str]:
    """(display name, address) of `mail.from`."""
    name, address = parseaddr(clean_header(mail.from_))
    if "@" not in address:
        raise ConfigError(f"mail.from = {mail.from_!r} is not allowed: use an address like Digest <digest@example.org>")
    if not address.isascii():  # else every message would fail to build, each on its own
        raise ConfigError(
            f"mail.from = {mail.from_!r} is not allowed: its address must be ASCII",
            hint="write a non-ASCII domain in its xn-- (IDNA) form",
        )
    return name, address


def sender_domain(mail: MailSettings) -> str:
    return sender_address(mail)[1].rpartition("@")[2].lower()


def list_name(mail: MailSettings) -> str:
    return sender_address(mail)[0] or "Paper Digest"


def list_id(mail: MailSettings) -> str:
    """`mail.list_id` (`<...>` added when missing), else `Name <digest.example.org>`."""
    given = clean_header(mail.list_id)
    if given:
        return given if "<" in given else f"<{given}>"
    return f"{list_name(mail)} <digest.{sender_domain(mail)}>"


def bounce_address(mail: MailSettings) -> str:
    """`mail.bounce_address`, checked: empty (bounces go to the From address) or ASCII
    `local@domain` with no `+` in the local part (the `+` starts the VERP token)."""
    address = clean_header(mail.bounce_address)
    local, at, domain = address.rpartition("@")
    if address and not (at and local and domain and address.isascii() and "+" not in local and " " not in address):
        raise ConfigError(
            f"mail.bounce_address = {mail.bounce_address!r} is not allowed: use an ASCII address like "
            "bounces@digest.example.org (no + in it: digestd adds +<token>)"
        )
    return address


def unsubscribe_mailto(mail: MailSettings) -> str:
    """Where mailed unsubscribes go: `mail.unsubscribe_mailto`, else `unsubscribe@` the
    bounce address's domain (digestd reads both there), else the From domain."""
    domain = bounce_address(mail).rpartition("@")[2] or sender_domain(mail)
    return clean_header(mail.unsubscribe_mailto) or f"unsubscribe@{domain}"


def verp_address(address: str, token: str) -> str:
    """`local+<token>@domain` for `local@domain` (variable envelope return path)."""
    local, _, domain = address.rpartition("@")
    return f"{local}+{token}@{domain}"


def message_id(subscriber_id: int, period: str, domain: str) -> str:
    """Deterministic per (subscriber, period): a re-sent digest is recognisably the same message."""
    digest = hashlib.sha256(f"{subscriber_id}|{period}".encode()).hexdigest()[:20]
    return f"<digest.{clean_header(period)}.{digest}@{domain}>"


def list_unsubscribe(url: str, mailto: str, token: str) -> str:
    """The https link, then a mailto: to `mailto` with the link's token in the subject, or,
    for a VERP `mailto` (its own token in the address, `token` empty), a plain subject."""
    subject = f"unsubscribe%20{token}" if token else "unsubscribe"
    return f"<{url}>,{CRLF} <mailto:{mailto}?subject={subject}>"


MAX_LINE = 998  # octets per line, CRLF excluded (RFC 5322 2.1.1)


def _lines(text: str) -> str:
    """LF line ends (templates render with LF), ending in one."""
    body = text.replace("\r\n", "\n")
    return body if body.endswith("\n") else body + "\n"


def _qp(body: str) -> bytes:
    """Quoted-printable with CRLF line ends."""
    return binascii.b2a_qp(body.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")


# Where a line break is not just a space to HTML (preformatted text, scripts, CSS `white-space`).
_LINES_MATTER = (b"<pre", b"<textarea", b"<script", b"<listing", b"<xmp", b"<plaintext", b"white-space")


def lines_matter(html: str) -> bool:
    """Whether HTML (a template) may hold text whose line breaks show: then its lines are
    not packed. Checked once per template, not per message (paper text is escaped)."""
    lowered = html.lower().encode()
    return any(marker in lowered for marker in _LINES_MATTER)


def _break_at(line: bytes, start: int, *, html: bool) -> int:
    """Where to break `line` after `start`: its last space within `MAX_LINE`; in HTML, the
    last such space outside a tag, so that no attribute value (a `title`, an `alt`) gains a
    line break. At most `start` when there is none. `start` is never inside a tag."""
    cut = line.rfind(b" ", start, start + MAX_LINE + 1)
    if html:
        opened = line.rfind(b"<", start, cut)
        while cut > start and opened > line.rfind(b">", start, cut):  # this space is inside a tag
            cut = line.rfind(b" ", start, opened)
            opened = line.rfind(b"<", start, cut)
    return cut


def _seven_bit(body: bytes, *, html: bool = False, pack: bool = False) -> bytes | None:
    """ASCII `body` (ending in a line break) with CRLF line ends, lines over `MAX_LINE`
    broken at a space (in HTML, outside tags); None when one cannot be (no space to break
    at). With `pack`, the lines are first made one (a line break becomes a space), so that
    every line but the last is close to `MAX_LINE`: every relay reads a message line by
    line, and fewer lines are less work for each. For HTML only: a line break there is a
    space."""
    lines = [body[:-1].replace(b"\n", b" "), b""] if pack else body.split(b"\n")
    if max(map(len, lines)) <= MAX_LINE:
        return b"\r\n".join(lines)
    broken = []
    for line in lines:
        start = 0
        while len(line) - start > MAX_LINE:
            cut = _break_at(line, start, html=html)
            if cut <= start:
                return None
            broken.append(line[start:cut])
            start = cut + 1
        broken.append(line[start:])
    return b"\r\n".join(broken)


def _part(
    content_type: str, body: str, *, boundary: str, html: bool, eight_bit: bool, pack: bool = False
) -> tuple[str, bytes]:
    """One MIME part (its headers and its body) and its encoding: 7bit where that is safe,
    8bit where allowed and the lines are short enough, else quoted-printable."""
    body = _lines(body)
    raw = body.encode("ascii", "xmlcharrefreplace") if html else body.encode("utf-8")
    if html or body.isascii():
        encoding, data = "7bit", _seven_bit(raw, html=html, pack=pack)
    elif eight_bit and max(map(len, raw.split(b"\n"))) <= MAX_LINE:
        encoding, data = "8bit", raw.replace(b"\n", b"\r\n")
    else:
        encoding, data = "quoted-printable", None
    if data is None or boundary.encode() in data:  # quoted-printable cannot contain it (it encodes "=")
        encoding, data = "quoted-printable", _qp(body)
    head = f'Content-Type: {content_type}; charset="utf-8"\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n'
    return encoding, head.encode("ascii") + data


def build_mime(
    headers: Sequence[str],
    text: str,
    html: str,
    *,
    boundary: str,
    eight_bit: bool = False,
    pack_html: bool = False,
    smtputf8: bool = False,
) -> tuple[bytes, bool]:
    """multipart/alternative bytes (the given headers, then the text part, then the HTML
    part) and whether they are 8bit (the text part may be, if `eight_bit` allows it). With
    `pack_html`, the HTML part's lines are packed (for templates where `lines_matter` is false).
    Headers are ASCII, except in a message sent with SMTPUTF8 (then they are UTF-8)."""
    head = [*headers, "MIME-Version: 1.0", f'Content-Type: multipart/alternative; boundary="{boundary}"', "", ""]
    delimiter = f"--{boundary}\r\n".encode("ascii")
    text_encoding, text_part = _part("text/plain", text, boundary=boundary, html=False, eight_bit=eight_bit)
    _, html_part = _part("text/html", html, boundary=boundary, html=True, eight_bit=False, pack=pack_html)
    data = b"".join(
        [
            CRLF.join(head).encode("utf-8" if smtputf8 else "ascii"),
            delimiter,
            text_part,
            delimiter,
            html_part,
            f"--{boundary}--\r\n".encode("ascii"),
        ]
    )
    return data, text_encoding == "8bit"


def mime_boundary(message_id: str) -> str:
    """A boundary that cannot occur in quoted-printable text (which encodes every `=`);
    a 7bit part that happens to contain it is sent quoted-printable instead."""
    return f"=_digestd_{hashlib.sha256(message_id.encode()).hexdigest()[:24]}"


class DkimSigner:
    """Signs messages with `mail.dkim_selector` and the key in `mail.dkim_key_file`."""

    def __init__(self, selector: str, domain: str, key: bytes) -> None:
        self.selector, self.domain, self.key = selector.encode(), domain.encode(), key
        self.headers = [name.lower().encode() for name in DKIM_HEADERS]

    def sign(self, data: bytes) -> bytes:
        signature = dkim.sign(
            data,
            self.selector,
            self.domain,
            self.key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=self.headers,
        )
        return signature + data


def load_dkim_signer(mail: MailSettings) -> DkimSigner | None:
    """The signer when DKIM is configured (key checked now), else None."""
    if not mail.dkim_selector and not mail.dkim_key_file:
        return None
    if not (mail.dkim_selector and mail.dkim_key_file):
        raise ConfigError("DKIM needs both mail.dkim_selector and mail.dkim_key_file", hint="set both, or neither")
    path = Path(mail.dkim_key_file).expanduser()
    try:
        key = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"mail.dkim_key_file = {str(path)!r} cannot be read: {error.strerror}") from None
    signer = DkimSigner(mail.dkim_selector, sender_domain(mail), key)
    try:
        signer.sign(b"From: a@b\r\nSubject: test\r\n\r\ntest\r\n")
    except dkim.DKIMException as error:
        raise ConfigError(f"mail.dkim_key_file = {str(path)!r} is not a usable private key: {error}") from None
    return signer
