"""Sign-up, log-in and bearer tokens."""

from __future__ import annotations

import asyncio
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from core import validation
from core.errors import Unauthenticated, Unavailable
from core.models import User
from runtime.failures import is_transient
from services.sessions import TokenWatch
from storage.revocations import Revocations
from storage.users import UserStore

# A fixed hash to verify against when the handle is unknown, so log-in takes the same time
# whether or not the account exists.
_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("not-a-real-password")

# The one memo of verified tokens (docs/security.md, "Verified-token memo").
VERIFIED_MAX = 65_536
ARGON2_QUEUE_PER_THREAD = 8  # hashes waiting per argon2 thread before log-ins are refused


@dataclass(frozen=True, slots=True)
class Claims:
    user_id: int
    jti: str
    issued_at: float
    expires_at: float


@dataclass(slots=True)
class _Verified:
    claims: Claims
    live: bool = False  # found not logged out, its account there (live())


class Accounts:
    def __init__(
        self, users: UserStore, next_id, jwt_secret: str, jwt_ttl_seconds: int,
        revocations: Revocations | None = None, argon2_threads: int = 2,
    ) -> None:
        self.users = users
        self.next_id = next_id
        self.secret = jwt_secret
        self.ttl = jwt_ttl_seconds
        self.revocations = revocations
        self.sessions = TokenWatch(self)  # open subscriptions' tokens
        self._verified: dict[str, _Verified] = {}  # bearer token -> its claims
        # argon2 on its own bounded pool: a log-in flood is refused, not queued everywhere.
        self._argon2 = ThreadPoolExecutor(argon2_threads, thread_name_prefix="argon2")
        self._argon2_slots = asyncio.Semaphore(argon2_threads * (1 + ARGON2_QUEUE_PER_THREAD))

    async def _hashing(self, fn, *args):
        if self._argon2_slots.locked():
            raise Unavailable("too many log-ins in progress; retry shortly")
        async with self._argon2_slots:
            return await asyncio.get_running_loop().run_in_executor(self._argon2, fn, *args)

    async def sign_up(self, handle: str, password: str, display_name: str | None) -> User:
        handle = validation.handle(handle)
        password = validation.password(password)
        name = validation.display_name(display_name, fallback=handle)
        # argon2 is deliberately slow (~50 ms): keep it off the event loop.
        password_hash = await self._hashing(_HASHER.hash, password)
        return await self.users.create(self.next_id(), handle, name, password_hash)

    async def log_in(self, handle: str, password: str) -> User:
        handle = validation.login_handle(handle)
        password = validation.login_password(password)
        found = await self.users.credentials(handle)
        stored = found[1] if found else _DUMMY_HASH
        ok = await self._hashing(_verify, stored, password)
        if not found or not ok:
            raise Unauthenticated("wrong handle or password")
        user, password_hash = found
        if _HASHER.check_needs_rehash(password_hash):
            await self.users.set_password_hash(user.id, await self._hashing(_HASHER.hash,
                                                                            password))
        return user

    def token_for(self, user: User) -> str:
        now = time.time()
        claims = {"sub": str(user.id), "iat": now, "exp": int(now) + self.ttl,
                  "jti": secrets.token_urlsafe(12)}
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def claims_from(self, authorization: str | None) -> Claims | None:
        """The claims of a `Bearer` header; None without one; Unauthenticated if bad. Every
        token must expire (`exp` is required)."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Authorization must be 'Bearer <token>'")
        token = token.strip()
        hit = self._verified.get(token)
        if hit is not None and hit.claims.expires_at > time.time():
            return hit.claims
        try:
            raw = jwt.decode(token, self.secret, algorithms=["HS256"],
                             options={"require": ["sub", "exp"]})
            claims = Claims(int(raw["sub"]), str(raw.get("jti") or ""),
                            float(raw.get("iat") or 0), float(raw["exp"]))
        except (jwt.PyJWTError, ValueError, TypeError):
            self._verified.pop(token, None)
            raise Unauthenticated("invalid or expired token") from None
        self._keep(token, _Verified(claims))
        return claims

    def _keep(self, token: str, verified: _Verified) -> None:
        if token not in self._verified and len(self._verified) >= VERIFIED_MAX:
            self._verified.pop(next(iter(self._verified)))  # the oldest entry
        self._verified[token] = verified

    def known_live(self, authorization: str | None) -> Claims | None:
        """The unexpired claims of a header already found live (mark_live), else None."""
        hit = self._verified.get(_token(authorization))
        if hit is None or not hit.live or hit.claims.expires_at <= time.time():
            return None
        return hit.claims

    def mark_live(self, authorization: str | None, claims: Claims) -> None:
        """Until its expiry, a hit is checked against the revocations only (still_live)."""
        self._keep(_token(authorization), _Verified(claims, live=True))

    def forget(self, authorization: str | None, user_id: int | None = None) -> None:
        """This process stops honouring a header (and with user_id, all of that user's)."""
        self._verified.pop(_token(authorization), None)
        if user_id is not None:
            for token in [t for t, v in self._verified.items() if v.claims.user_id == user_id]:
                self._verified.pop(token, None)

    def user_id_from(self, authorization: str | None) -> int | None:
        claims = self.claims_from(authorization)
        return None if claims is None else claims.user_id

    def revocations_version(self) -> int | None:
        """Changes whenever this process's copy of the revocations does; None while that
        copy is not loaded."""
        revocations = self.revocations
        if revocations is None:
            return 0
        revocations.start()
        return revocations.version if revocations.ready.is_set() else None

    def still_live(self, claims: Claims) -> bool | None:
        """Whether a verified token is not logged out, from this process's copy of the
        revocations (no I/O); None while that copy is not loaded."""
        revocations = self.revocations
        if revocations is None:
            return True
        revocations.start()
        if not revocations.ready.is_set():
            return None
        return not revocations.revoked(claims.user_id, claims.jti, claims.issued_at)

    async def live(self, claims: Claims, check_user: bool = True) -> bool | None:
        """Not logged out and (check_user) its user exists; None when a backend is down (the
        caller lets the token through, unremembered, as limits fail open)."""
        try:
            known = self.still_live(claims)
            if known is None:
                known = not await self.revocations.revoked_in_redis(  # type: ignore[union-attr]
                    claims.user_id, claims.jti, claims.issued_at)
            if not known:
                return False
            return not check_user or claims.user_id in await self.users.get_many(
                [claims.user_id])
        except Exception as e:
            if is_transient(e):
                return None
            raise

    async def log_out(self, claims: Claims, everywhere: bool = False) -> None:
        if everywhere:
            await self.revocations.revoke_user(claims.user_id)  # type: ignore[union-attr]
        else:
            await self.revocations.revoke_token(  # type: ignore[union-attr]
                claims.jti or "-", claims.expires_at)


def _verify(stored: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored, password if isinstance(password, str) else "")
    except (VerificationError, InvalidHashError):
        return False


def _token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
