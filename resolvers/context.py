"""What every resolver gets: the services, the viewer and this request's loaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
        try:
            self.viewer_id = self.services.accounts.user_id_from(authorization)
            self.auth_error = None
        except Unauthenticated as e:
            self.viewer_id, self.auth_error = None, e
        self.fresh_loaders()

    def fresh_loaders(self) -> None:
        """New per-request caches. A WebSocket context lives as long as the connection, so
        subscriptions call this per event: nothing is served stale across events."""
        self.loaders = make_loaders(self.services, self.viewer_id)


def build_context(services: Services, authorization: str | None, **kw: Any) -> Context:
    context = Context(services, **kw)
    context.authenticate(authorization)
    return context
