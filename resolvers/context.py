"""What every resolver gets: the services, the viewer and this request's loaders."""

from __future__ import annotations

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
        known = accounts.known_live(authorization)
        if known is not None:
            live = accounts.still_live(known)
            if live is None:  # this process's copy of the revocations is not loaded yet
                live = await accounts.live(known, check_user=False) is not False
            if live:
                self.viewer_id, self.auth_error, self.claims = known.user_id, None, known
                self.fresh_loaders()
                return
            accounts.forget(authorization)
        state: bool | None = True
        try:
            claims = accounts.claims_from(authorization)
            if claims is not None:
                state = await accounts.live(claims)
                if state is False:
                    raise Unauthenticated("this token was logged out or its account is gone")
        except Unauthenticated as e:
            accounts.forget(authorization)
            self.viewer_id, self.auth_error, self.claims = None, e, None
        else:
            self.viewer_id, self.auth_error, self.claims = (
                None if claims is None else claims.user_id), None, claims
            if claims is not None and state:  # None: a backend is down, ask again
                accounts.mark_live(authorization, claims)
        self.fresh_loaders()

    def forget_token(self, everywhere: bool = False) -> None:
        """This process stops honouring the logged-out token (or all of its user's)."""
        user = self.claims.user_id if everywhere and self.claims is not None else None
        self.services.accounts.forget(self.authorization, user)

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
        """New per-request caches (subscriptions call this per event)."""
        self.loaders = make_loaders(self.services, self.viewer_id)


def issued(services: Services, token: str) -> None:
    """A token this process just issued is known live: its first use is not re-checked."""
    header = f"Bearer {token}"
    claims = services.accounts.claims_from(header)
    if claims is not None:
        services.accounts.mark_live(header, claims)


async def build_context(services: Services, authorization: str | None, **kw: Any) -> Context:
    context = Context(services, **kw)
    await context.authenticate(authorization)
    return context
