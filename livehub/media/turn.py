"""Time-limited TURN credentials: coturn's ``use-auth-secret``, the "TURN REST API".

The TURN server and livehub share a secret. For a user and an expiry time,
livehub makes

    username   = "<expiry as unix seconds>:<user>"
    credential = base64(HMAC-SHA1(secret, username))

and the TURN server, knowing the secret, checks the credential and refuses it
once the expiry has passed (draft-uberti-behave-turn-rest-00, section 2.2;
coturn's README.turnserver, "TURN REST API"). Nothing is stored anywhere.

``ice_servers`` turns the configured URLs into what a peer connection and a
``Link: <url>; rel="ice-server"`` header need (RFC 9725 section 4.6): TURN URLs
with a credential when a secret is set, STUN URLs as they are.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

DEFAULT_TTL = 24 * 3600  # the draft's recommendation
# What a user id may be as it is; anything else is hashed (coturn splits the username
# at the first ':', and the username travels in a quoted HTTP header parameter).
PLAIN_USER = re.compile(r"\A[A-Za-z0-9_.@-]{1,64}\Z")


@dataclass(frozen=True)
class TurnCredential:
    username: str
    credential: str = field(repr=False)
    expires_at: int

    @classmethod
    def mint(cls, secret: str, user: str, now: float, ttl: int = DEFAULT_TTL) -> TurnCredential:
        """The credential of ``user`` valid from ``now`` (unix seconds) for ``ttl`` seconds."""
        if not secret:
            raise ValueError("the TURN secret is empty")
        if ttl <= 0:
            raise ValueError(f"the TURN credential lifetime must be positive, not {ttl}")
        expires_at = int(now) + ttl
        username = f"{expires_at}:{user_part(user)}"
        digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
        return cls(username, base64.b64encode(digest).decode("ascii"), expires_at)


def user_part(user: str) -> str:
    """``user`` as it goes into a username: as it is when plain, else a stable hash."""
    if PLAIN_USER.match(user):
        return user
    return "u" + hashlib.sha256(user.encode()).hexdigest()[:24]


def is_turn(url: str) -> bool:
    return url.startswith(("turn:", "turns:"))


@dataclass(frozen=True)
class IceServer:
    """One configured URL, with the credential a TURN server wants (if any)."""

    url: str
    turn: TurnCredential | None = None

    def link(self) -> str:
        """The value of one ``Link`` header (RFC 9725 section 4.6)."""
        value = f'<{self.url}>; rel="ice-server"'
        if self.turn is not None:
            value += (
                f"; username={quoted(self.turn.username)}"
                f"; credential={quoted(self.turn.credential)}"
                '; credential-type="password"'
            )
        return value


def ice_servers(
    urls: Iterable[str], secret: str | None, user: str, now: float, ttl: int = DEFAULT_TTL
) -> list[IceServer]:
    """``urls`` for ``user`` at ``now``: TURN URLs get a credential when ``secret`` is set."""
    credential = TurnCredential.mint(secret, user, now, ttl) if secret else None
    return [IceServer(url, credential if is_turn(url) else None) for url in urls]


def quoted(value: str) -> str:
    """An HTTP quoted-string (RFC 9110 section 5.6.4)."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("a header parameter cannot carry control characters")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
