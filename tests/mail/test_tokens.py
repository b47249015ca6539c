"""Signed link tokens: round trip, tampering, kinds, the subscriber's link key, old tokens."""

from __future__ import annotations

import base64

import pytest
from web_support import old_token

from digestd.errors import ConfigError
from digestd.mail.tokens import (
    ARCHIVE,
    MANAGE,
    RATE,
    UNSUBSCRIBE,
    VIEW,
    Token,
    TokenError,
    TokenSigner,
    check_secret_key,
)

KEY = "link-key-of-7"


def test_tokens_round_trip_with_their_payload() -> None:
    signer = TokenSigner("k1")
    assert signer.verify(signer.sign_unsubscribe(7, KEY), link_key=KEY, kind=UNSUBSCRIBE) == Token(UNSUBSCRIBE, 7)
    rate = signer.verify(signer.sign_rate(7, KEY, "astro-ph/0601001", -1), link_key=KEY, kind=RATE)
    assert (rate.subscriber_id, rate.paper_id, rate.value) == (7, "astro-ph/0601001", -1)
    assert "/" not in signer.sign_rate(7, KEY, "doi:10.1/x/y", 1)  # safe in a URL path
    assert signer.claimed_subscriber(signer.sign_manage(7, KEY), kind=MANAGE) == 7


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature changed
        lambda t: TokenSigner("other").sign_unsubscribe(7, KEY),  # another secret key
        lambda t: TokenSigner("k1").sign_unsubscribe(7, "the key of another record"),  # another subscriber's
        lambda t: "bWFuYWdlHzk." + t.split(".")[1],  # payload swapped (manage, 9)
        lambda t: "garbage",
        lambda t: "",
    ],
)
def test_tampered_tokens_are_refused(mangle: object) -> None:
    signer = TokenSigner("k1")
    with pytest.raises(TokenError):
        signer.verify(mangle(signer.sign_unsubscribe(7, KEY)), link_key=KEY)  # type: ignore[operator]


def test_a_token_of_another_kind_is_refused() -> None:
    signer = TokenSigner("k1")
    with pytest.raises(TokenError, match="not rate"):
        signer.verify(signer.sign_manage(7, KEY), link_key=KEY, kind=RATE)
    with pytest.raises(TokenError, match="not rate"):
        signer.claimed_subscriber(signer.sign_manage(7, KEY), kind=RATE)


def test_tokens_from_before_link_keys_pass_only_when_asked() -> None:
    signer = TokenSigner("k1")
    old = old_token("k1", UNSUBSCRIBE, 7)
    with pytest.raises(TokenError):
        signer.verify(old, link_key=KEY, kind=UNSUBSCRIBE)
    assert signer.verify(old, link_key=KEY, kind=UNSUBSCRIBE, accept_legacy=True) == Token(UNSUBSCRIBE, 7)
    with pytest.raises(TokenError):
        TokenSigner("k2").verify(old, link_key=KEY, accept_legacy=True)


@pytest.mark.parametrize("subscriber_id", ["0", "-1", "+7", "1_0", "99999999999", "\u0667"])
def test_ids_that_no_database_can_hold_are_refused_before_any_lookup(subscriber_id: str) -> None:
    payload = base64.urlsafe_b64encode(f"manage\x1f{subscriber_id}".encode()).rstrip(b"=").decode()
    with pytest.raises(TokenError):
        TokenSigner("k1").claimed_subscriber(f"{payload}.AAAA")


def test_real_sending_needs_a_secret_key() -> None:
    with pytest.raises(ConfigError, match="DIGESTD_SECRET_KEY"):
        check_secret_key("")


def test_view_and_archive_tokens_carry_their_digest_and_show_only() -> None:
    signer = TokenSigner("k1")
    view = signer.verify(signer.sign_view(7, KEY, "2026-11-30"), link_key=KEY, kind=VIEW)
    assert (view.subscriber_id, view.period) == (7, "2026-11-30")
    assert signer.verify(signer.sign_archive(7, KEY), link_key=KEY, kind=ARCHIVE) == Token(ARCHIVE, 7)
    with pytest.raises(TokenError, match="not manage"):
        signer.verify(signer.sign_archive(7, KEY), link_key=KEY, kind=MANAGE)  # a feed reader's token
    with pytest.raises(ValueError):
        signer.sign_view(7, KEY, "../etc")  # a period is never a path


def test_return_tokens_name_the_delivery_and_fit_any_local_part() -> None:
    from digestd.mail.tokens import BOUNCE, read_return_token

    signer = TokenSigner("k1")
    token = signer.sign_return(BOUNCE, 1234, KEY)
    assert read_return_token(token) is not None and read_return_token(token)[0] == 1234  # type: ignore[index]
    assert token == token.lower() and len(f"bounces+{token}") <= 64  # a relay may lower-case a local part
    assert signer.verify_return(token.upper(), kind=BOUNCE, link_key=KEY) == 1234
    for wrong in (
        {"kind": UNSUBSCRIBE, "link_key": KEY},  # the kind is signed
        {"kind": BOUNCE, "link_key": "another subscriber's key"},
    ):
        with pytest.raises(TokenError):
            signer.verify_return(token, **wrong)
    for bad in ("", "1234", "1234-", "0-aaaaaaaaaaaaaaaa", "12345678901-aaaaaaaaaaaaaaaa", token.replace("-", "+")):
        assert read_return_token(bad) is None
        with pytest.raises(TokenError):
            signer.verify_return(bad, kind=BOUNCE, link_key=KEY)
    with pytest.raises(TokenError):
        TokenSigner("k2").verify_return(token, kind=BOUNCE, link_key=KEY)
