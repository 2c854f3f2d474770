"""Identity: API keys (stored hashed), short-lived access JWTs and rotating refresh tokens.

- API key: `mp_<prefix>_<secret>`; the public prefix finds the row, only SHA-256 of the whole
  key is stored (the key has 256 bits of entropy, so a fast hash is the right one).
- Access token: HS256 JWT (verified with an explicit algorithm list) ≤ 15 min with `sub`,
  `plan`, `jti`, `iat`, `exp`, plus `kid` (API key id) and `fam` (refresh family) so that
  revoking the key or the family ends the token's life at once.
- Refresh token: random, stored hashed, single use: each use marks it used and issues the
  next one in the same family; presenting a used one again revokes the whole family — except
  within `REFRESH_RETRY_GRACE_S` of its use while no later token of the family has been
  spent: that is a client that lost the response (a page reloaded mid-refresh), answered with
  another pair of the same family.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass

import jwt
from sqlalchemy import Select, bindparam, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from mouthpiece.service.config import Settings
from mouthpiece.service.db import ApiKey, RefreshToken, User, new_id, now
from mouthpiece.service.errors import ApiError

JWT_ALGORITHMS = ["HS256"]  # the only algorithm accepted when decoding ("none" never is)
MAX_ACCESS_TTL_S = 900
API_KEY_RE = re.compile(r"^mp_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
REFRESH_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
# A used refresh token presented again this soon, before its successor was spent, is a retry
# (the web page renews shortly before expiry; a reload during that request lost the answer
# and sent the token it still had). Later, or after the successor was spent, it is a replay.
REFRESH_RETRY_GRACE_S = 10.0
_BEARER = {"WWW-Authenticate": "Bearer"}


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def signing_key(secret: bytes, purpose: str) -> bytes:
    """A separate key per purpose (JWT, download URLs) derived from the one service secret."""
    return hmac.new(secret, f"mouthpiece/{purpose}".encode(), hashlib.sha256).digest()


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, _BEARER)


def new_api_key() -> tuple[str, str, str]:
    """(plaintext key, public prefix, sha256 of the key): the plaintext is shown once, never stored."""
    prefix = secrets.token_hex(6)
    key = f"mp_{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, hash_secret(key)


@dataclass(frozen=True)
class TokenConfig:
    jwt_key: bytes
    access_ttl_s: int
    refresh_ttl_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> "TokenConfig":
        return cls(signing_key(settings.secret(), "jwt"),
                   min(settings.access_token_ttl_s, MAX_ACCESS_TTL_S), settings.refresh_token_ttl_s)


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    api_key_id: str
    family_id: str
    jti: str


def authenticate_api_key(session: Session, key: str) -> tuple[User, ApiKey]:
    """The user and key row for a presented API key, or 401 (unknown, wrong, revoked, disabled)."""
    match = API_KEY_RE.match(key)
    row = session.execute(select(ApiKey).where(ApiKey.prefix == match.group(1))).scalar_one_or_none() \
        if match else None
    if row is None or not hmac.compare_digest(row.key_hash, hash_secret(key)):
        raise unauthorized("invalid API key")
    if row.revoked_at is not None:
        raise unauthorized("this API key has been revoked")
    user = session.get(User, row.user_id)
    if user is None or user.disabled_at is not None:
        raise unauthorized("this account is disabled")
    row.last_used_at = now()
    return user, row


def issue_tokens(session: Session, config: TokenConfig, user: User, api_key_id: str,
                 family_id: str | None = None) -> TokenPair:
    """A new access token and a new refresh token (a new family unless continuing one).

    Runs inside the caller's transaction; commit to make the refresh token usable.
    """
    family_id = family_id or new_id()
    refresh = secrets.token_urlsafe(32)
    issued = now()
    session.add(RefreshToken(user_id=user.id, api_key_id=api_key_id, family_id=family_id,
                             token_hash=hash_secret(refresh), created_at=issued,
                             expires_at=issued + config.refresh_ttl_s))
    claims = {"sub": user.id, "plan": user.plan, "jti": new_id(), "iat": int(issued),
              "exp": int(issued) + config.access_ttl_s, "kid": api_key_id, "fam": family_id,
              "typ": "access"}
    access = jwt.encode(claims, config.jwt_key, algorithm=JWT_ALGORITHMS[0])
    return TokenPair(access, refresh, config.access_ttl_s, config.refresh_ttl_s)


def rotate_refresh_token(session: Session, config: TokenConfig, token: str) -> TokenPair:
    """Spend a refresh token for a new pair; a second use of the same token revokes its family.

    The caller commits in both cases (the revocation must stick even though this raises 401).
    """
    row = session.execute(select(RefreshToken).where(RefreshToken.token_hash == hash_secret(token))) \
        .scalar_one_or_none() if REFRESH_TOKEN_RE.match(token) else None
    if row is None:
        raise unauthorized("invalid refresh token")
    spent = session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None), RefreshToken.revoked_at.is_(None))
        .values(used_at=now()))
    if spent.rowcount != 1:
        session.refresh(row)  # its use may have been committed after the select above
        if not _retry_of_a_lost_answer(session, row):
            revoke_family(session, row.family_id)
            raise unauthorized("refresh token already used: every token of this sign-in is now "
                               "revoked; sign in again with your API key")
    if row.expires_at <= now():
        raise unauthorized("refresh token expired; sign in again with your API key")
    key = session.get(ApiKey, row.api_key_id)
    user = session.get(User, row.user_id)
    if key is None or key.revoked_at is not None or user is None or user.disabled_at is not None:
        raise unauthorized("the API key of this sign-in has been revoked")
    return issue_tokens(session, config, user, key.id, row.family_id)


def _retry_of_a_lost_answer(session: Session, row: RefreshToken) -> bool:
    """Whether a used refresh token is presented again by the client that used it, which lost
    the answer: within REFRESH_RETRY_GRACE_S of its use, not revoked, and no token of its family
    spent after it (a thief's replay once the owner has moved on revokes the family)."""
    if row.revoked_at is not None or row.used_at is None:
        return False
    if now() - row.used_at > REFRESH_RETRY_GRACE_S:
        return False
    later = session.execute(select(RefreshToken.id).where(
        RefreshToken.family_id == row.family_id, RefreshToken.used_at > row.used_at).limit(1))
    return later.first() is None


def revoke_family(session: Session, family_id: str) -> None:
    session.execute(update(RefreshToken)
                    .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
                    .values(revoked_at=now()))


class VerifiedTokens:
    """Claims of access tokens whose signature and shape were verified, by token (bounded LRU).

    A hit skips only the HMAC check and JSON parsing of a token seen before; its expiry is
    checked on every use, and revocation is never cached (`user_for_access` reads it per request).
    """

    def __init__(self, size: int = 8192) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[AccessClaims, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str) -> tuple[AccessClaims, int] | None:
        with self._lock:
            entry = self._entries.get(token)
            if entry is not None:
                self._entries.move_to_end(token)
            return entry

    def put(self, token: str, claims: AccessClaims, expires_at: int) -> None:
        with self._lock:
            self._entries[token] = (claims, expires_at)
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)


def decode_access_token(config: TokenConfig, token: str, verified: VerifiedTokens | None = None) -> AccessClaims:
    """Claims of a valid access token; 401 for a bad signature, algorithm, expiry or shape."""
    known = verified.get(token) if verified is not None else None
    if known is not None:
        if known[1] <= now():
            raise unauthorized("access token expired; refresh it (POST /v1/auth/refresh)")
        return known[0]
    try:
        claims = jwt.decode(token, config.jwt_key, algorithms=JWT_ALGORITHMS,
                            options={"require": ["exp", "iat", "sub", "jti", "kid", "fam", "typ"]})
    except jwt.ExpiredSignatureError:
        raise unauthorized("access token expired; refresh it (POST /v1/auth/refresh)") from None
    except jwt.InvalidTokenError:
        raise unauthorized("invalid access token") from None
    if claims.get("typ") != "access" or not all(isinstance(claims[k], str) for k in ("sub", "kid", "fam", "jti")):
        raise unauthorized("invalid access token")
    result = AccessClaims(claims["sub"], claims["kid"], claims["fam"], claims["jti"])
    if verified is not None and isinstance(claims["exp"], int | float):
        verified.put(token, result, int(claims["exp"]))
    return result


@functools.cache
def _principal_statement() -> Select:
    """One query for everything an access token's validity depends on (built once, then cached
    compiled): the user row, its key's owner and revocation, and whether the refresh family
    was revoked."""
    users, keys, refresh = User.__table__, ApiKey.__table__, RefreshToken.__table__
    family_revoked = select(refresh.c.id).where(refresh.c.family_id == bindparam("family_id"),
                                                refresh.c.revoked_at.is_not(None)).exists()
    return (select(*users.c, keys.c.user_id.label("key_user_id"), keys.c.revoked_at.label("key_revoked_at"),
                   family_revoked.label("family_revoked"))
            .select_from(keys.join(users, users.c.id == keys.c.user_id))
            .where(keys.c.id == bindparam("api_key_id")))


def user_for_access(db: Session | Connection, claims: AccessClaims) -> User:
    """The token's user, unless its key, its refresh family or the account was revoked since.

    One indexed query per request, never a cache: revoking a key, a sign-in or an account ends
    its tokens on the very next request, whichever API process serves it. The User returned is
    detached (read-only use)."""
    connection = db.connection() if isinstance(db, Session) else db
    row = connection.execute(_principal_statement(),
                             {"api_key_id": claims.api_key_id, "family_id": claims.family_id}).first()
    if row is None or row.key_user_id != claims.user_id or row.key_revoked_at is not None:
        raise unauthorized("the API key of this token has been revoked")
    if row.disabled_at is not None:
        raise unauthorized("this account is disabled")
    if row.family_revoked:
        raise unauthorized("this sign-in has been revoked; sign in again with your API key")
    return User(**{column.key: row._mapping[column.key] for column in User.__table__.c})
