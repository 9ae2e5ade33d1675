"""Errors typed by who must see them.

Every error carries a stable ``code`` and a human ``message``; the edge
(``livehub.signaling.replies``) turns each kind into a Socket.IO ack or an HTTP
status in one place. Domain code raises these and never formats replies.
"""

from __future__ import annotations

from typing import Any, ClassVar


class LivehubError(Exception):
    """Base of every error a client may see."""

    status: ClassVar[int] = 400

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class UserError(LivehubError):
    """The user did something the room does not allow now (muted, slow mode, rate limit)."""

    status = 422


class ProtocolError(LivehubError):
    """A broken or hostile client: malformed payload, unknown event, wrong types."""

    status = 400


class NotAuthorised(LivehubError):
    """Missing, invalid or expired credentials."""

    status = 401


class Forbidden(LivehubError):
    """Valid credentials that do not grant this action."""

    status = 403


class NotFound(LivehubError):
    status = 404


class Conflict(LivehubError):
    status = 409


class RateLimited(UserError):
    status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__("rate_limited", message, retry_after=round(retry_after, 3))
        self.retry_after = retry_after


class Unavailable(LivehubError):
    """A backing service (the state store, the event log's disk) cannot be used now.

    Nothing was recorded; the client may retry after ``retry_after`` seconds.
    """

    status = 503

    def __init__(self, message: str, retry_after: float = 1.0, **details: Any) -> None:
        super().__init__(
            "unavailable", message, retry_after=round(retry_after, 3), retryable=True, **details
        )
        self.retry_after = retry_after


#: What a thing that went away raises (no such room, the room closed). Code that
#: skips what went away catches these, never ``LivehubError`` as a whole: that
#: would swallow ``Unavailable`` too, which means "not now, try again".
GONE: tuple[type[LivehubError], ...] = (NotFound, Conflict)
