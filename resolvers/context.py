"""What every resolver gets: the services, the viewer and this request's loaders."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from core.errors import Unauthenticated
from loaders import Loaders, make_loaders
from runtime.container import Services
from services import limits
from services.accounts import Claims
from storage.ratelimit import Verdict


@dataclass
class Context:
    services: Services
    viewer_id: int | None = None
    loaders: Loaders = field(init=False)  # set by authenticate()
    request: Any = None
    response: Any = None
    # A bad token: only raised when something needs the viewer, so public reads still work
    # for a client with a stale token, while any authenticated field says why it failed.
    auth_error: Exception | None = None
    # WebSocket only: the connection_init payload, and the process's pub/sub hub.
    connection_params: dict[str, Any] | None = None
    hub: Any = None
    hydrator: Any = None
    # The Authorization header and its verified claims; the client's address.
    authorization: str | None = None
    claims: Claims | None = None
    address: str = ""

    def mark_degraded(self) -> None:
        """Part of the answer came from the database because Redis was down."""
        if self.request is not None and hasattr(self.request, "state"):
            self.request.state.chirp_degraded = True

    def require_viewer(self) -> int:
        if self.auth_error is not None:
            raise self.auth_error
        if self.viewer_id is None:
            raise Unauthenticated("sign in: send Authorization: Bearer <token>")
        return self.viewer_id

    async def authenticate(self, authorization: str | None) -> None:
        """(Re)identify the viewer, e.g. from a WebSocket's connection_init payload."""
        accounts = self.services.accounts
        self.authorization = authorization
        key = (accounts.secret, authorization)
        known = _verified.get(key) if authorization else None
        now = time.time()
        if known is not None and known.claims.expires_at > now:
            live = accounts.still_live(known.claims)
            if live is None:  # this process's copy of the revocations is not loaded yet
                live = await accounts.live(known.claims, check_user=False) is not False
            if live:
                self.viewer_id, self.auth_error, self.claims = (
                    known.claims.user_id, None, known.claims)
                self.fresh_loaders()
                return
            known = None
            _verified.pop(key, None)
        if known is None:
            state: bool | None = True
            try:
                claims = accounts.claims_from(authorization)
                if claims is not None:
                    state = await accounts.live(claims)
                    if state is False:
                        raise Unauthenticated(
                            "this token was logged out or its account is gone")
            except Unauthenticated as e:
                _verified.pop(key, None)
                self.viewer_id, self.auth_error, self.claims = None, e, None
            else:
                self.viewer_id, self.auth_error, self.claims = (
                    None if claims is None else claims.user_id), None, claims
                if claims is not None and state:  # None: a backend is down, ask again
                    remember(key, claims)
        self.fresh_loaders()

    def forget_token(self, everywhere: bool = False) -> None:
        """This process stops honouring the context's token (or all of its user's) at once:
        it was logged out."""
        _verified.pop((self.services.accounts.secret, self.authorization), None)
        if everywhere and self.claims is not None:
            user = self.claims.user_id
            for key in [k for k, v in _verified.items() if v.claims.user_id == user]:
                _verified.pop(key, None)

    def note(self, verdict: Verdict | None) -> None:
        """Rate-limit headers for this answer, from the last bucket it took from."""
        if verdict is not None and self.response is not None \
                and getattr(self.request, "scope", {}).get("type") == "http":
            for name, value in limits.headers(verdict).items():
                self.response.headers[name] = value

    def check_read(self) -> None:
        """The per-account read limit: in-process (services/limits.py), no round trip."""
        if self.viewer_id is not None:
            self.note(self.services.limits.read(self.viewer_id))

    def fresh_loaders(self) -> None:
        """New per-request caches. A WebSocket context lives as long as the connection, so
        subscriptions call this per event: nothing is served stale across events."""
        self.loaders = make_loaders(self.services, self.viewer_id)


# Verified bearer headers: (signing key, header) -> claims, found live when first seen
# (not logged out, the account exists). Verifying an HS256 token costs ~40 µs, and a client
# sends the same token with every request. The rule: a hit is honoured until its expiry
# while this process's copy of the revocations (storage/revocations.py, kept current by
# a Redis channel) does not name it, a check without I/O. Bounded: cleared when full.
_VERIFIED_MAX = 50_000


@dataclass(slots=True)
class _Known:
    claims: Claims


_verified: dict[tuple[str, Any], _Known] = {}


def remember(key: tuple[str, Any], claims: Claims) -> None:
    if len(_verified) >= _VERIFIED_MAX:
        _verified.clear()
    _verified[key] = _Known(claims)


def issued(services: Services, token: str) -> None:
    """A token this process just issued is known live: its first use is not re-checked."""
    header = f"Bearer {token}"
    claims = services.accounts.claims_from(header)
    if claims is not None:
        remember((services.accounts.secret, header), claims)


async def build_context(services: Services, authorization: str | None, **kw: Any) -> Context:
    context = Context(services, **kw)
    await context.authenticate(authorization)
    return context
