"""Bearer tokens: the verified-token memo answers exactly what decoding would."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from core.errors import Unauthenticated
from core.models import User
from services.accounts import Accounts


def _accounts(ttl: int) -> Accounts:
    return Accounts(users=None, next_id=None, jwt_secret="s" * 48, jwt_ttl_seconds=ttl)


def _user(uid: int) -> User:
    return User(uid, f"u{uid}", "U", "", datetime.now(UTC), 0, 0, 0)


def test_a_remembered_token_still_expires() -> None:
    accounts = _accounts(ttl=1)
    token = accounts.token_for(_user(7))
    assert accounts.user_id_from(f"Bearer {token}") == 7
    assert accounts.user_id_from(f"Bearer {token}") == 7  # from the memo
    time.sleep(1.1)
    with pytest.raises(Unauthenticated):
        accounts.user_id_from(f"Bearer {token}")


def test_a_token_signed_with_another_secret_is_refused_even_after_a_good_one() -> None:
    good, other = _accounts(ttl=60), Accounts(None, None, "t" * 48, 60)
    assert good.user_id_from(f"Bearer {good.token_for(_user(1))}") == 1
    with pytest.raises(Unauthenticated):
        good.user_id_from(f"Bearer {other.token_for(_user(1))}")


def test_only_a_token_marked_live_is_known_live_until_forgotten() -> None:
    accounts = _accounts(ttl=60)
    mine, theirs = (f"Bearer {accounts.token_for(_user(u))}" for u in (1, 2))
    again = f"Bearer {accounts.token_for(_user(1))}"
    for header in (mine, theirs, again):
        assert accounts.known_live(header) is None
        accounts.mark_live(header, accounts.claims_from(header))
    assert accounts.known_live(mine).user_id == 1
    assert accounts.known_live(mine.replace("Bearer", "Basic")) is None
    accounts.forget(mine)
    assert accounts.known_live(mine) is None and accounts.known_live(again) is not None
    accounts.forget(theirs, user_id=1)
    assert accounts.known_live(again) is None and accounts.known_live(theirs) is None
    assert accounts.user_id_from(mine) == 1  # still a good token: verified again
