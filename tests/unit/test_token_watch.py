"""Open subscriptions' tokens: ended at expiry, or at the sweep after a logout."""

import asyncio
import time

import pytest

from services.accounts import Claims
from services.sessions import TokenWatch

pytestmark = pytest.mark.asyncio(loop_scope="session")


class _Accounts:
    """still_live from a set of logged-out token ids; None (not loaded) for the unknown."""

    def __init__(self) -> None:
        self.out: set[str] = set()
        self.unknown: set[str] = set()
        self.asked: list[str] = []
        self.checked = 0

    def log_out(self, *jtis: str) -> None:
        self.out |= set(jtis)

    def revocations_version(self) -> int | None:
        return None if self.unknown else len(self.out)

    def still_live(self, claims: Claims) -> bool | None:
        self.checked += 1
        return None if claims.jti in self.unknown else claims.jti not in self.out

    async def live(self, claims: Claims, check_user: bool = True) -> bool | None:
        self.asked.append(claims.jti)
        return claims.jti not in self.out


def _claims(jti: str, ttl: float = 60) -> Claims:
    return Claims(1, jti, time.time(), time.time() + ttl)


async def test_a_token_ends_at_its_expiry_and_a_logout_at_the_next_sweep():
    accounts = _Accounts()
    watch = TokenWatch(accounts, check_seconds=0.05)
    expiring, out, unknown, kept = (watch.watch(_claims("e", 0.2)), watch.watch(_claims("o")),
                                    watch.watch(_claims("u")), watch.watch(_claims("k")))
    accounts.log_out("o", "u")
    accounts.unknown.add("u")
    started = time.monotonic()
    await asyncio.wait_for(asyncio.gather(out, unknown), 1)
    assert "u" in accounts.asked and "o" not in accounts.asked  # only the unknown asks Redis
    assert not expiring.done() and not kept.done()
    await asyncio.wait_for(expiring, 1)
    assert 0.15 < time.monotonic() - started < 0.6
    assert not kept.done()
    for ended in (expiring, out, unknown, kept):
        watch.unwatch(ended)
    assert kept.cancelled()
    await asyncio.sleep(0.15)
    assert watch._task.done()  # nothing watched: the sweep stops
    await watch.close()


async def test_a_sweep_checks_tokens_only_after_a_revocation_or_a_new_watch():
    accounts = _Accounts()
    watch = TokenWatch(accounts, check_seconds=0.02)
    first, second = watch.watch(_claims("a")), watch.watch(_claims("b"))
    await asyncio.sleep(0.1)  # the first sweep checks both, the later ones nothing
    assert accounts.checked == 2
    third = watch.watch(_claims("c"))
    await asyncio.sleep(0.1)
    assert accounts.checked == 5  # a new token: one more sweep of the three
    accounts.log_out("b")
    await asyncio.wait_for(second, 1)
    assert accounts.checked == 8 and not first.done() and not third.done()
    for ended in (first, second, third):
        watch.unwatch(ended)
    await watch.close()
