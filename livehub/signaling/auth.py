"""Who is calling: tokens for rooms, the admin key for the API."""

from __future__ import annotations

import hmac

from livehub.errors import Forbidden, NotAuthorised
from livehub.rooms import tokens
from livehub.rooms.models import Principal, Room

ALL_ROLES = frozenset({"host", "moderator", "viewer"})
VIEWER_ONLY = frozenset({"viewer"})


class Auth:
    def __init__(self, secret: str, admin_key: str) -> None:
        self._secret = secret
        self._admin_key = admin_key

    @property
    def secret(self) -> str:
        return self._secret

    def keys_for(self, room: Room) -> list[tuple[str, frozenset[str]]]:
        keys = [(self._secret, ALL_ROLES)]
        if room.room_key:
            keys.append((room.room_key, VIEWER_ONLY))
        return keys

    def principal(self, token: str | None, room: Room) -> Principal:
        if not token:
            raise NotAuthorised("token_missing", "A token is required.")
        return tokens.verify(token, self.keys_for(room), room.id)

    def is_admin(self, bearer: str | None) -> bool:
        return bool(bearer) and hmac.compare_digest(
            (bearer or "").encode(), self._admin_key.encode()
        )

    def require_admin(self, bearer: str | None) -> None:
        if not bearer:
            raise NotAuthorised("admin_required", "This call needs the admin key.")
        if not self.is_admin(bearer):
            raise Forbidden("admin_required", "This call needs the admin key.")

    def require_staff(self, bearer: str | None, room: Room, *, host_only: bool = False) -> str:
        """Admin key, or a host (or moderator) token for ``room``; returns the actor."""
        if self.is_admin(bearer):
            return "admin"
        who = self.principal(bearer, room)
        allowed = {"host"} if host_only else {"host", "moderator"}
        if who.role not in allowed:
            raise Forbidden("forbidden", "Your role does not allow this.")
        return who.viewer_id


def bearer_of(header: str | None) -> str | None:
    if header and header.startswith("Bearer "):
        return header[len("Bearer ") :].strip() or None
    return None
