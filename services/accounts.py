"""Sign-up, log-in and bearer tokens."""

from __future__ import annotations

import asyncio
import time

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from core import validation
from core.errors import Unauthenticated
from core.models import User
from storage.users import UserStore

# A fixed hash to verify against when the handle is unknown, so log-in takes the same time
# whether or not the account exists.
_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("not-a-real-password")

# Verified tokens -> (user id, expiry): a client sends the same token with every request.
# Tokens are stateless (no revocation list), so a hit checked against its expiry answers
# exactly what decoding would.
_VERIFIED_MAX = 65_536


class Accounts:
    def __init__(
        self, users: UserStore, next_id, jwt_secret: str, jwt_ttl_seconds: int
    ) -> None:
        self.users = users
        self.next_id = next_id
        self.secret = jwt_secret
        self.ttl = jwt_ttl_seconds
        self._verified: dict[str, tuple[int, float]] = {}

    async def sign_up(self, handle: str, password: str, display_name: str | None) -> User:
        handle = validation.handle(handle)
        password = validation.password(password)
        name = validation.display_name(display_name, fallback=handle)
        # argon2 is deliberately slow (~50 ms): keep it off the event loop.
        password_hash = await asyncio.to_thread(_HASHER.hash, password)
        return await self.users.create(self.next_id(), handle, name, password_hash)

    async def log_in(self, handle: str, password: str) -> User:
        found = None
        if isinstance(handle, str) and validation.HANDLE_RE.fullmatch(handle):
            found = await self.users.credentials(handle)
        stored = found[1] if found else _DUMMY_HASH
        ok = await asyncio.to_thread(_verify, stored, password)
        if not found or not ok:
            raise Unauthenticated("wrong handle or password")
        user, password_hash = found
        if _HASHER.check_needs_rehash(password_hash):
            await self.users.set_password_hash(user.id, _HASHER.hash(password))
        return user

    def token_for(self, user: User) -> str:
        now = int(time.time())
        claims = {"sub": str(user.id), "iat": now, "exp": now + self.ttl}
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def user_id_from(self, authorization: str | None) -> int | None:
        """The user a `Bearer` header names; None without one; Unauthenticated if bad."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Authorization must be 'Bearer <token>'")
        token = token.strip()
        hit = self._verified.get(token)
        if hit is not None and hit[1] > time.time():
            return hit[0]
        try:
            claims = jwt.decode(
                token, self.secret, algorithms=["HS256"], options={"require": ["sub"]}
            )
            user_id = int(claims["sub"])
        except (jwt.PyJWTError, ValueError):
            self._verified.pop(token, None)
            raise Unauthenticated("invalid or expired token") from None
        if "exp" in claims:  # only tokens that expire are remembered, until they do
            if len(self._verified) >= _VERIFIED_MAX:
                self._verified.pop(next(iter(self._verified)))  # the oldest entry
            self._verified[token] = (user_id, float(claims["exp"]))
        return user_id


def _verify(stored: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored, password if isinstance(password, str) else "")
    except (VerificationError, InvalidHashError):
        return False
