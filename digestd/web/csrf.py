"""CSRF protection for the web forms: a signed double-submit token and an origin check.

The browser holds a random value in a cookie (HttpOnly, SameSite=Lax); every form carries
HMAC(secret key, value) in a hidden field. A POST is accepted only when

- the browser says it comes from this site's own pages: `Sec-Fetch-Site` is `same-origin`
  (or `none`), or, from browsers that send no `Sec-Fetch-Site`, `Origin` is `mail.base_url`'s
  origin or the request's own (no `Origin` at all passes: browsers send one with every
  cross-origin form);
- it carries exactly one value of the cookie (two different ones mean one was planted), and
- the field is that value's HMAC, compared in constant time.

Anyone can fetch a field for a cookie of their own; what they cannot do is make a victim's
browser post it: another site's form carries its own `Origin`, and a sibling domain (which
may set cookies for the parent domain) is another origin too. Over https the cookie is
named `__Host-digestd_csrf`, which browsers let no other host set or overwrite. The
RFC 8058 one-click unsubscribe POST is exempt: it must work without cookies.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Collection, Mapping
from urllib.parse import urlsplit

from starlette.datastructures import Headers

COOKIE_NAME = "digestd_csrf"
SECURE_COOKIE_NAME = "__Host-digestd_csrf"  # https only: no other host can set it
FIELD_NAME = "csrf"
_COOKIE_VALUE = re.compile(r"^[A-Za-z0-9_\-]{22,64}$")
_OWN_PAGES = ("same-origin", "none")  # Sec-Fetch-Site values of a form on our own pages


def cookie_header(headers: Headers) -> str:
    """All of a request's cookies (a client may send them in more than one header)."""
    return "; ".join(headers.getlist("cookie"))


def origin_of(url: str) -> str:
    """`https://Digest.example.org:443/x` → `https://digest.example.org` (what `Origin` says)."""
    try:
        parts = urlsplit(url.strip())
        given_port = parts.port
    except ValueError:  # a port that is not a number: matches nothing
        return ""
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = "" if given_port in (None, {"http": 80, "https": 443}.get(scheme)) else f":{given_port}"
    return f"{scheme}://{host}{port}"


class CsrfGuard:
    def __init__(self, secret_key: str, *, secure_cookie: bool) -> None:
        self._key = hashlib.sha256(b"digestd-csrf-v1|" + secret_key.encode()).digest()
        self.secure_cookie = secure_cookie
        self.cookie_name = SECURE_COOKIE_NAME if secure_cookie else COOKIE_NAME

    @staticmethod
    def new_cookie_value() -> str:
        return secrets.token_urlsafe(24)

    def cookie_values(self, cookie_header: str | None) -> list[str]:
        """Every value the browser sent for our cookie (a planted one comes as a second value)."""
        values = []
        for chunk in (cookie_header or "").split(";"):
            name, _, value = chunk.strip().partition("=")
            if name == self.cookie_name:
                values.append(value.strip().strip('"'))
        return values

    def usable_cookie(self, cookie_header: str | None) -> str | None:
        """The one cookie value the browser sent, if it looks like one we set, else None."""
        values = set(self.cookie_values(cookie_header))
        value = values.pop() if len(values) == 1 else None
        return value if value and _COOKIE_VALUE.match(value) else None

    def field_for(self, cookie_value: str) -> str:
        return hmac.new(self._key, b"csrf|" + cookie_value.encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def from_own_pages(headers: Mapping[str, str], own_origins: Collection[str]) -> bool:
        """False when the browser says the POST comes from another origin."""
        site = headers.get("sec-fetch-site")
        if site is not None:
            return site.strip().lower() in _OWN_PAGES
        origin = headers.get("origin")
        return origin is None or origin_of(origin) in own_origins

    def check(self, cookie_header: str | None, field_value: str | None) -> bool:
        cookie = self.usable_cookie(cookie_header)
        if cookie is None or not field_value:
            return False
        return hmac.compare_digest(self.field_for(cookie), field_value)
