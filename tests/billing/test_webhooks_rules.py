"""The pure parts of webhooks: the retry schedule, the signed headers as any Standard Webhooks
receiver checks them, endpoint URL validation, and key rotation of stored secrets."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from billing.errors import InvalidBillingInput
from billing.secrets import Secrets, SecretsKeyError, generate_key
from billing.webhooks.endpoints import check_url
from billing.webhooks.signing import backoff, body, headers, new_event_id, new_secret


@given(attempt=st.integers(min_value=0, max_value=10**6),
       base=st.integers(min_value=1, max_value=3600), cap=st.integers(min_value=1, max_value=86400),
       seed=st.integers(min_value=0, max_value=2**32))
def test_backoff_grows_exponentially_within_its_cap_and_jitters_over_the_upper_half(
    attempt: int, base: int, cap: int, seed: int
) -> None:
    top = min(cap, base * 2 ** min(max(0, attempt - 1), 64))
    wait = backoff(attempt, base, cap, random.Random(seed))
    assert timedelta(seconds=top / 2) <= wait <= timedelta(seconds=top)
    assert wait <= timedelta(seconds=cap)


@given(attempt=st.integers(min_value=1, max_value=40), seed=st.integers(min_value=0))
def test_the_longest_wait_never_shrinks_from_one_attempt_to_the_next(attempt: int, seed: int
                                                                      ) -> None:
    class Top(random.Random):
        def random(self) -> float:
            return 1.0  # the upper end of the jitter

    assert backoff(attempt, 30, 6 * 3600, Top(seed)) <= backoff(attempt + 1, 30, 6 * 3600,
                                                                Top(seed))


@given(offset_min=st.integers(min_value=-14 * 60, max_value=14 * 60))
def test_headers_verify_with_standardwebhooks_whatever_the_timezone_of_the_send_time(
    offset_min: int
) -> None:
    secret, msg_id = new_secret(), new_event_id()
    sent = datetime.now(timezone(timedelta(minutes=offset_min)))
    payload = body("invoice.paid", {"invoice": {"id": "inv_1", "total": 12_345}}, sent)
    hdrs = headers(secret, msg_id, payload, sent)
    assert hdrs["webhook-id"] == msg_id and hdrs["content-type"] == "application/json"
    assert hdrs["webhook-timestamp"] == str(int(sent.timestamp()))
    got = Webhook(secret).verify(payload, hdrs)
    assert got["type"] == "invoice.paid" and got["data"]["invoice"]["total"] == 12_345
    assert got["timestamp"] == sent.astimezone(UTC).isoformat()
    with pytest.raises(Exception, match="signature"):
        Webhook(new_secret()).verify(payload, hdrs)


def test_headers_refuse_a_naive_send_time() -> None:
    with pytest.raises(ValueError, match="aware"):
        headers(new_secret(), new_event_id(), "{}", datetime(2026, 3, 1))


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:99999/h",  # port out of range: httpx would refuse every attempt
    "http://127.0.0.1:0/h",
    "http://[::1/h",             # urlsplit's ValueError, not a 500
    "http://acc.example/a b",
    "http://acc\x00.example/h",
    "https://acc.example/h\n",
    "https://user@acc.example/h",
    "https://:pw@acc.example/h",
    "ftp://acc.example/h",
    "https:///no-host",
    "https://acc.example/" + "x" * 2000,
])
def test_urls_the_dispatcher_could_never_deliver_to_are_refused(url: str) -> None:
    with pytest.raises(InvalidBillingInput):
        check_url(url)


@pytest.mark.parametrize("url", [
    "https://acc.example/hooks?tenant=1", "http://127.0.0.1:8080/h", "https://[::1]:8443/h",
])
def test_ordinary_urls_pass_unchanged(url: str) -> None:
    assert check_url(url) == url


def test_rotation_re_encrypts_under_the_new_key_so_the_old_one_can_go() -> None:
    old, new = generate_key(), generate_key()
    stored = Secrets(old).encrypt("whsec_abc")
    during = Secrets(f"{new},{old}")
    rotated = during.rotate(stored)
    assert Secrets(new).decrypt(rotated) == "whsec_abc"
    with pytest.raises(SecretsKeyError, match="does not decrypt"):
        Secrets(new).decrypt(stored)
    with pytest.raises(SecretsKeyError, match="cannot be re-encrypted"):
        Secrets(generate_key()).rotate(stored)
