"""What every resolver gets: the services, the viewer and this request's loaders."""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.errors import Unauthenticated
from loaders import Loaders, make_loaders
from runtime.container import Services


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

    def authenticate(self, authorization: str | None) -> None:
        """(Re)identify the viewer, e.g. from a WebSocket's connection_init payload."""
        accounts = self.services.accounts
        key = (accounts.secret, authorization)
        known = _verified.get(key) if authorization else None
        if known is not None and known[1] > time.time():
            self.viewer_id, self.auth_error = known[0], None
        else:
            try:
                self.viewer_id, self.auth_error = accounts.user_id_from(authorization), None
            except Unauthenticated as e:
                self.viewer_id, self.auth_error = None, e
            else:
                if self.viewer_id is not None:
                    _remember(key, self.viewer_id)
        self.fresh_loaders()

    def fresh_loaders(self) -> None:
        """New per-request caches. A WebSocket context lives as long as the connection, so
        subscriptions call this per event: nothing is served stale across events."""
        self.loaders = make_loaders(self.services, self.viewer_id)


# Verified bearer headers: (signing key, header) -> (user id, expiry). Verifying an HS256
# token costs ~40 µs, and a client sends the same token with every request; the same
# string was signed by our key, so only its expiry has to be checked again (as PyJWT
# does: valid while exp > now). Bounded: cleared when full.
_VERIFIED_MAX = 50_000
_verified: dict[tuple[str, str], tuple[int, float]] = {}


def _remember(key: tuple[str, Any], user_id: int) -> None:
    try:
        token = key[1].partition(" ")[2].strip()
        payload = token.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = claims["exp"]
    except (IndexError, KeyError, TypeError, ValueError, binascii.Error, orjson.JSONDecodeError):
        return  # no readable expiry: verify this one every time
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return
    if len(_verified) >= _VERIFIED_MAX:
        _verified.clear()
    _verified[key] = (user_id, float(exp))


def build_context(services: Services, authorization: str | None, **kw: Any) -> Context:
    context = Context(services, **kw)
    context.authenticate(authorization)
    return context
