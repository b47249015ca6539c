"""Signed link tokens: round trip, tampering, kinds."""

from __future__ import annotations

import pytest

from digestd.errors import ConfigError
from digestd.mail.tokens import RATE, UNSUBSCRIBE, Token, TokenError, TokenSigner, check_secret_key


def test_tokens_round_trip_with_their_payload() -> None:
    signer = TokenSigner("k1")
    assert signer.verify(signer.sign_unsubscribe(7), kind=UNSUBSCRIBE) == Token(UNSUBSCRIBE, 7)
    rate = signer.verify(signer.sign_rate(7, "astro-ph/0601001", -1), kind=RATE)
    assert (rate.subscriber_id, rate.paper_id, rate.value) == (7, "astro-ph/0601001", -1)
    assert "/" not in signer.sign_rate(7, "doi:10.1/x/y", 1)  # safe in a URL path


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature changed
        lambda t: TokenSigner("other").sign_unsubscribe(7),  # another key
        lambda t: "bWFuYWdlHzk." + t.split(".")[1],  # payload swapped (manage, 9)
        lambda t: "garbage",
        lambda t: "",
    ],
)
def test_tampered_tokens_are_refused(mangle: object) -> None:
    signer = TokenSigner("k1")
    with pytest.raises(TokenError):
        signer.verify(mangle(signer.sign_unsubscribe(7)))  # type: ignore[operator]


def test_a_token_of_another_kind_is_refused() -> None:
    signer = TokenSigner("k1")
    with pytest.raises(TokenError, match="not rate"):
        signer.verify(signer.sign_manage(7), kind=RATE)


def test_real_sending_needs_a_secret_key() -> None:
    with pytest.raises(ConfigError, match="DIGESTD_SECRET_KEY"):
        check_secret_key("")
