"""Wire payloads of the live namespace and the REST API, validated on arrival.

Unknown fields are refused, so a client cannot slip in a viewer id or a role:
identity comes from the token only.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import msgspec

from livehub.errors import ProtocolError
from livehub.interactions.messages import Mode

T = TypeVar("T")

ClientId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
ViewerId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
# \Z, not $: "$" also matches before a trailing newline.
Color = Annotated[str, msgspec.Meta(pattern=r"^#[0-9a-fA-F]{6}\Z")]
EventId = Annotated[int, msgspec.Meta(ge=1, le=2**62)]


class Payload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class ConnectAuth(Payload, frozen=True, forbid_unknown_fields=True):
    room: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    # Optional here so that a missing token is refused as token_missing, not bad_payload.
    token: Annotated[str, msgspec.Meta(max_length=4096)] | None = None
    last_event_id: Annotated[int, msgspec.Meta(ge=0, le=2**62)] | None = None


class Empty(Payload, frozen=True, forbid_unknown_fields=True):
    pass


class ChatIn(Payload, frozen=True, forbid_unknown_fields=True):
    text: Annotated[str, msgspec.Meta(max_length=2000)]
    client_id: ClientId
    mode: Mode = "scroll"
    color: Color = "#ffffff"


class LikeIn(Payload, frozen=True, forbid_unknown_fields=True):
    count: Annotated[int, msgspec.Meta(ge=1, le=50)] = 1


class MessageRef(Payload, frozen=True, forbid_unknown_fields=True):
    message_id: EventId


class ViewerRef(Payload, frozen=True, forbid_unknown_fields=True):
    viewer_id: ViewerId


class MuteIn(Payload, frozen=True, forbid_unknown_fields=True):
    viewer_id: ViewerId
    seconds: Annotated[int, msgspec.Meta(ge=1, le=86400)] = 600


class BanIn(Payload, frozen=True, forbid_unknown_fields=True):
    viewer_id: ViewerId
    reason: Annotated[str, msgspec.Meta(max_length=200)] = ""


class RuleIn(Payload, frozen=True, forbid_unknown_fields=True):
    pattern: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    kind: Literal["word", "regex"] = "word"
    action: Literal["block", "hold", "mute", "ban"] = "block"
    mute_seconds: Annotated[int, msgspec.Meta(ge=1, le=86400)] = 600


class RuleRef(Payload, frozen=True, forbid_unknown_fields=True):
    rule_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class SlowIn(Payload, frozen=True, forbid_unknown_fields=True):
    seconds: Annotated[int, msgspec.Meta(ge=0, le=3600)]


class PauseIn(Payload, frozen=True, forbid_unknown_fields=True):
    paused: bool


# -- REST ------------------------------------------------------------------------


class CreateRoomIn(Payload, frozen=True, forbid_unknown_fields=True):
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
    id: str | None = None
    private: bool = False
    settings: dict[str, Any] | None = None


class UpdateRoomIn(Payload, frozen=True, forbid_unknown_fields=True):
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=120)] | None = None
    settings: dict[str, Any] | None = None


class TokenIn(Payload, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    role: Literal["host", "moderator", "viewer"] = "viewer"
    viewer_id: ViewerId | None = None
    ttl_seconds: Annotated[int, msgspec.Meta(ge=60, le=366 * 24 * 3600)] | None = None


class JoinIn(Payload, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


def parse(kind: type[T], data: object) -> T:
    """Validate already-decoded JSON into ``kind`` or raise a ProtocolError."""
    if data is None:
        data = {}
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        raise ProtocolError("bad_payload", f"Invalid payload: {exc}") from exc


def decode(kind: type[T], body: bytes) -> T:
    """Decode and validate a JSON body."""
    try:
        return msgspec.json.decode(body or b"{}", type=kind)
    except msgspec.ValidationError as exc:
        raise ProtocolError("bad_payload", f"Invalid payload: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise ProtocolError("bad_json", "The body is not valid JSON.") from exc
