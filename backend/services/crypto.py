"""Keys, password hashes, tokens and encryption, in one place.

Everything derives from the one configured secret key with HKDF, so the
token-signing key and the settings-encryption key are independent and a
deployment configures a single secret.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from backend.domain.errors import QuarterdeckError, Unauthenticated

JWT_ALGORITHM = "HS256"
JWT_ISSUER = "quarterdeck"
API_KEY_PREFIX = "qd_"


def _derive(secret_key: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret_key)


def token_hash(token: str) -> str:
    """Refresh tokens and API key secrets are random, so a plain SHA-256 suffices."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def new_api_key() -> tuple[str, str, str]:
    """(full key, lookup prefix, secret). The prefix finds the row, the secret proves it."""
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return f"{API_KEY_PREFIX}{prefix}_{secret}", prefix, secret


def split_api_key(key: str) -> tuple[str, str] | None:
    if not key.startswith(API_KEY_PREFIX):
        return None
    prefix, _, secret = key[len(API_KEY_PREFIX) :].partition("_")
    if not prefix or not secret:
        return None
    return prefix, secret


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class DecryptionFailed(QuarterdeckError):
    """A secret setting was encrypted under another key (the key was changed)."""

    code = "decryption_failed"


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    session_id: str
    expires_at: float


class Keys:
    """The derived keys and the operations that use them."""

    def __init__(self, secret_key: bytes) -> None:
        self._jwt_key = _derive(secret_key, b"quarterdeck access tokens")
        self._fernet = Fernet(
            base64.urlsafe_b64encode(_derive(secret_key, b"quarterdeck settings"))
        )
        # Lower memory cost than argon2's default keeps a sign-in under ~50 ms on
        # a small server while staying within OWASP's argon2id recommendations.
        self._hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    async def hash_password(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify_password(self, password_hash: str | None, password: str) -> bool:
        """Check a password; with no hash (unknown user) spend the same time and fail."""

        def _verify() -> bool:
            try:
                return self._hasher.verify(password_hash or self._dummy_hash, password)
            except (VerificationError, InvalidHashError):
                return False

        ok = await asyncio.to_thread(_verify)
        return ok and password_hash is not None

    def issue_access_token(self, *, user_id: int, session_id: str, ttl: float) -> str:
        now = time.time()
        claims: dict[str, Any] = {
            "sub": str(user_id),
            "sid": session_id,
            "iat": int(now),
            "exp": int(now + ttl),
            "iss": JWT_ISSUER,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._jwt_key, algorithm=JWT_ALGORITHM)

    def read_access_token(self, token: str) -> AccessClaims:
        try:
            claims = jwt.decode(
                token,
                self._jwt_key,
                algorithms=[JWT_ALGORITHM],
                issuer=JWT_ISSUER,
                options={"require": ["exp", "sub", "sid", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the session token has expired; sign in again") from None
        except jwt.InvalidTokenError:
            raise Unauthenticated("the session token is not valid") from None
        try:
            return AccessClaims(
                user_id=int(claims["sub"]), session_id=str(claims["sid"]), expires_at=claims["exp"]
            )
        except (TypeError, ValueError):
            raise Unauthenticated("the session token is not valid") from None

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise DecryptionFailed(
                "a secret setting cannot be decrypted: was the secret key changed?"
            ) from None
