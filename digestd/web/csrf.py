"""CSRF protection for the web forms: a signed double-submit token.

The browser holds a random value in a cookie (HttpOnly, SameSite=Lax); every form carries
HMAC(secret key, value) in a hidden field. A POST is accepted only when the field matches
the cookie's HMAC, compared in constant time. Another site can neither read the cookie nor
compute the field, and a cookie planted by a sibling domain does not help it either. The
RFC 8058 one-click unsubscribe POST is exempt: it must work without cookies.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

COOKIE_NAME = "digestd_csrf"
FIELD_NAME = "csrf"
_COOKIE_VALUE = re.compile(r"^[A-Za-z0-9_\-]{22,64}$")


class CsrfGuard:
    def __init__(self, secret_key: str, *, secure_cookie: bool) -> None:
        self._key = hashlib.sha256(b"digestd-csrf-v1|" + secret_key.encode()).digest()
        self.secure_cookie = secure_cookie

    @staticmethod
    def new_cookie_value() -> str:
        return secrets.token_urlsafe(24)

    @staticmethod
    def usable_cookie(value: str | None) -> str | None:
        """The cookie value if it looks like one we set, else None."""
        return value if value and _COOKIE_VALUE.match(value) else None

    def field_for(self, cookie_value: str) -> str:
        return hmac.new(self._key, b"csrf|" + cookie_value.encode(), hashlib.sha256).hexdigest()

    def check(self, cookie_value: str | None, field_value: str | None) -> bool:
        cookie = self.usable_cookie(cookie_value)
        if cookie is None or not field_value:
            return False
        return hmac.compare_digest(self.field_for(cookie), field_value)
