"""Signed tokens: mint, verify, and every way a token can be refused."""

from __future__ import annotations

import time
import warnings
from typing import Any

import jwt
import pytest
from jwt.warnings import InsecureKeyLengthWarning

from livehub.errors import Forbidden, NotAuthorised
from livehub.rooms import tokens
from livehub.rooms.models import Principal

SERVER_KEY = "server-secret-0123456789abcdef0123456789"
ROOM_KEY = "room-secret-0123456789abcdef0123456789ab"
ALL_ROLES = frozenset({"host", "moderator", "viewer"})
VIEWER_ONLY = frozenset({"viewer"})
KEYS = [(SERVER_KEY, ALL_ROLES), (ROOM_KEY, VIEWER_ONLY)]


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "aud": tokens.AUDIENCE,
        "room": "r1",
        "role": "viewer",
        "sub": "v_abc",
        "name": "Ann",
        "iat": now,
        "exp": now + 600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def signed(key: str = SERVER_KEY, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), key, algorithm="HS256")


def refused(token: str, room: str = "r1") -> NotAuthorised:
    with pytest.raises(NotAuthorised) as info:
        tokens.verify(token, KEYS, room)
    return info.value


@pytest.mark.parametrize("role", ["host", "moderator", "viewer"])
def test_round_trip(role: str) -> None:
    token, vid, expires = tokens.mint(SERVER_KEY, room="r1", role=role, name="Ann")  # type: ignore[arg-type]
    assert vid.startswith("v_")
    assert expires > time.time()
    principal = tokens.verify(token, KEYS, "r1")
    assert principal == Principal(room="r1", viewer_id=vid, name="Ann", role=role)  # type: ignore[arg-type]
    assert principal.is_staff is (role != "viewer")
    assert tokens.unverified_room(token) == "r1"


def test_mint_keeps_a_given_viewer_id_and_ttl() -> None:
    token, vid, expires = tokens.mint(
        ROOM_KEY, room="r1", role="viewer", name="Bo", viewer_id="v_keep", ttl_seconds=60, now=1e9
    )
    assert (vid, expires) == ("v_keep", 1e9 + 60)
    decoded = jwt.decode(
        token,
        ROOM_KEY,
        algorithms=["HS256"],
        audience=tokens.AUDIENCE,
        options={"verify_exp": False},
    )
    assert decoded["iat"] == 1_000_000_000
    assert decoded["exp"] == 1_000_000_060


def test_viewer_ids_are_fresh() -> None:
    assert len({tokens.new_viewer_id() for _ in range(100)}) == 100


def test_name_defaults_and_is_cut() -> None:
    assert tokens.verify(signed(name=None), KEYS, "r1").name == "viewer"
    assert tokens.verify(signed(name=""), KEYS, "r1").name == "viewer"
    assert tokens.verify(signed(name="x" * 50), KEYS, "r1").name == "x" * 32


def test_room_key_grants_viewer() -> None:
    token, vid, _ = tokens.mint(ROOM_KEY, room="r1", role="viewer", name="Ann")
    assert tokens.verify(token, KEYS, "r1").viewer_id == vid


@pytest.mark.parametrize("role", ["host", "moderator"])
def test_room_key_cannot_grant_staff(role: str) -> None:
    token, _, _ = tokens.mint(ROOM_KEY, room="r1", role=role, name="Eve")  # type: ignore[arg-type]
    with pytest.raises(Forbidden) as info:
        tokens.verify(token, KEYS, "r1")
    assert info.value.code == "forbidden"


def test_expired() -> None:
    token, _, _ = tokens.mint(
        SERVER_KEY, room="r1", role="viewer", name="Ann", ttl_seconds=10, now=time.time() - 3600
    )
    assert refused(token).code == "token_expired"


def test_expired_but_signed_with_an_unknown_key_is_invalid() -> None:
    token = signed("another-key-0123456789abcdef0123456789", exp=int(time.time()) - 60)
    assert refused(token).code == "token_invalid"


def test_wrong_key() -> None:
    token, _, _ = tokens.mint(
        "another-key-0123456789abcdef0123456789", room="r1", role="host", name="Mallory"
    )
    assert refused(token).code == "token_invalid"


def test_wrong_room() -> None:
    token, _, _ = tokens.mint(SERVER_KEY, room="r2", role="host", name="Ann")
    with pytest.raises(Forbidden) as info:
        tokens.verify(token, KEYS, "r1")
    assert info.value.code == "token_wrong_room"
    assert tokens.unverified_room(token) == "r2"


def test_wrong_audience() -> None:
    assert refused(signed(aud="someone-else")).code == "token_invalid"


@pytest.mark.parametrize("missing", ["exp", "iat", "sub", "room", "role", "aud"])
def test_missing_claim(missing: str) -> None:
    assert refused(signed(**{missing: None})).code == "token_invalid"


def test_alg_none() -> None:
    token = jwt.encode(claims(role="host"), None, algorithm="none")
    assert refused(token).code == "token_invalid"


def test_other_algorithm() -> None:
    with warnings.catch_warnings():  # our 40-byte key is short for HS512; that is not the point
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        token = jwt.encode(claims(), SERVER_KEY, algorithm="HS512")
    assert refused(token).code == "token_invalid"


@pytest.mark.parametrize("role", ["admin", "HOST", "", 7, ["host"]])
def test_unknown_role(role: object) -> None:
    assert refused(signed(role=role)).code == "token_invalid"


@pytest.mark.parametrize("sub", ["v_" + "x" * 63, ""])
def test_unusable_sub(sub: str) -> None:
    assert refused(signed(sub=sub)).code == "token_invalid"


def test_sub_of_64_is_fine() -> None:
    sub = "v_" + "x" * 62
    assert tokens.verify(signed(sub=sub), KEYS, "r1").viewer_id == sub


@pytest.mark.parametrize("garbage", ["", "not-a-token", "a.b.c"])
def test_garbage(garbage: str) -> None:
    assert refused(garbage).code == "token_invalid"
    with pytest.raises(NotAuthorised):
        tokens.unverified_room(garbage)


def test_unverified_room_needs_a_room() -> None:
    with pytest.raises(NotAuthorised) as info:
        tokens.unverified_room(signed(room=None))
    assert info.value.code == "token_invalid"
