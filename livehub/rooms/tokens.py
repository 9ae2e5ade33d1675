"""Signed tokens (JWT, HS256) carrying room, role, a stable viewer id and expiry."""

from __future__ import annotations

import secrets
import time
from typing import Any, get_args

import jwt

from livehub.errors import Forbidden, NotAuthorised
from livehub.rooms.models import Principal, Role

AUDIENCE = "livehub"
ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "room", "role", "aud"]


def new_viewer_id() -> str:
    return "v_" + secrets.token_urlsafe(9)


def mint(
    key: str,
    *,
    room: str,
    role: Role,
    name: str,
    viewer_id: str | None = None,
    ttl_seconds: int = 7 * 24 * 3600,
    now: float | None = None,
) -> tuple[str, str, float]:
    """Sign a token; returns (token, viewer_id, expires_at)."""
    issued = int(now if now is not None else time.time())
    vid = viewer_id or new_viewer_id()
    expires = issued + ttl_seconds
    claims = {
        "aud": AUDIENCE,
        "room": room,
        "role": role,
        "sub": vid,
        "name": name,
        "iat": issued,
        "exp": expires,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM), vid, float(expires)


def unverified_room(token: str) -> str:
    """The room a token claims, read before its signature is checked (to pick the key)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise NotAuthorised("token_invalid", "The token cannot be read.") from exc
    room = claims.get("room")
    if not isinstance(room, str):
        raise NotAuthorised("token_invalid", "The token names no room.")
    return room


def verify(token: str, keys: list[tuple[str, frozenset[str]]], room: str) -> Principal:
    """Check a token against candidate keys, each with the roles it may grant.

    Raises NotAuthorised for unreadable, unsigned or expired tokens and Forbidden
    for a valid token that does not admit to ``room``.
    """
    claims, granted = _decode_with_any(token, keys)
    role = claims.get("role")
    if role not in get_args(Role):
        raise NotAuthorised("token_invalid", "The token carries an unknown role.")
    if role not in granted:
        raise Forbidden("forbidden", f"This key cannot grant the {role} role.")
    if claims.get("room") != room:
        raise Forbidden("token_wrong_room", "The token is for another room.")
    name = claims.get("name")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 64:
        raise NotAuthorised("token_invalid", "The token carries no usable viewer id.")
    return Principal(room=room, viewer_id=sub, name=str(name or "")[:32] or "viewer", role=role)


def _decode_with_any(
    token: str, keys: list[tuple[str, frozenset[str]]]
) -> tuple[dict[str, Any], frozenset[str]]:
    expired = False
    for key, roles in keys:
        try:
            claims = dict(
                jwt.decode(
                    token,
                    key,
                    algorithms=[ALGORITHM],
                    audience=AUDIENCE,
                    options={"require": REQUIRED_CLAIMS},
                )
            )
            return claims, roles
        except jwt.ExpiredSignatureError:
            expired = True
        except jwt.PyJWTError:
            continue
    if expired:
        raise NotAuthorised("token_expired", "The token has expired.")
    raise NotAuthorised("token_invalid", "The token is not valid.")


LINK_AUDIENCE = "livehub-report-link"


def mint_link(key: str, *, room: str, stream: str, ttl_seconds: int = 300) -> str:
    """A short-lived signature that opens one stream's report in a browser tab.

    Plain links cannot carry an Authorization header; this keeps the staff
    token itself out of addresses, histories and logs.
    """
    now = int(time.time())
    claims = {
        "aud": LINK_AUDIENCE,
        "room": room,
        "stream": stream,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def verify_link(token: str, key: str, *, room: str, stream: str) -> None:
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=LINK_AUDIENCE,
            options={"require": ["exp", "room", "stream"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise NotAuthorised("link_expired", "This report link has expired; open it again.") from exc
    except jwt.PyJWTError as exc:
        raise NotAuthorised("link_invalid", "This report link is not valid.") from exc
    if claims.get("room") != room or claims.get("stream") != stream:
        raise Forbidden("link_invalid", "This link is for another report.")
