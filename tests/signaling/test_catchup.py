"""What a node missed while cut off from pub/sub is sent again from the log, once a room."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from livehub.rooms.eventlog import EventLog, NewEvent
from livehub.signaling.catchup import MAX_CATCHUP, Catchup
from livehub.signaling.fanout import room_channel


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[EventLog]:
    opened = await EventLog.open(tmp_path / "events.db")
    yield opened
    await opened.close()


async def chat(log: EventLog, room: str, text: str) -> int:
    data = {"name": "Ann", "role": "viewer", "text": text, "mode": "scroll", "color": "#fff"}
    event, _ = await log.append(NewEvent(room=room, kind="chat.message", actor="v1", data=data))
    return event.id


class Frames(list[tuple[str, Any, str]]):
    async def __call__(self, event: str, data: Any, channel: str) -> None:
        self.append((event, data, channel))

    def texts(self, channel: str) -> list[str]:
        return [m["text"] for e, d, c in self if c == channel for m in d["messages"]]


async def test_each_room_gets_what_was_logged_after_its_last_delivered_message(
    log: EventLog,
) -> None:
    catchup = Catchup(log)
    first = await chat(log, "r1", "seen before the cut")
    catchup.delivered(room_channel("r1"), {"messages": [{"id": first}]})
    await chat(log, "r2", "old news in r2")  # r2 had no frame here: it starts at the cut
    await catchup.cut_off()
    missed = [await chat(log, "r1", f"missed {i}") for i in range(3)]
    await chat(log, "r2", "missed in r2")
    deleted, _ = await log.append(
        NewEvent(room="r1", kind="mod.delete", actor="mod", data={"message_id": missed[1]})
    )
    assert deleted.id
    await catchup.cut_off()  # a second failure in the same streak keeps the first marks
    frames = Frames()
    channels = [room_channel("r1"), room_channel("r2"), "staff:r1", None]
    sent = await catchup.rejoined(frames, channels)
    assert frames.texts(room_channel("r1")) == ["missed 0", "missed 2"]  # deleted stays gone
    assert frames.texts(room_channel("r2")) == ["missed in r2"]
    assert sent == catchup.recovered == 3
    assert {e for e, _, _ in frames} == {"batch"}
    # Rejoining again without a new cut sends nothing.
    assert await catchup.rejoined(frames, channels) == 0


async def test_a_room_with_nothing_missed_gets_no_frame_and_the_catchup_is_bounded(
    log: EventLog,
) -> None:
    catchup = Catchup(log)
    last = await chat(log, "quiet", "delivered")
    catchup.delivered(room_channel("quiet"), {"messages": [{"id": last}]})
    catchup.delivered(room_channel("quiet"), {"messages": []})  # an empty frame changes nothing
    catchup.delivered(room_channel("quiet"), {"messages": [{"id": 1}]})  # never goes back
    await catchup.cut_off()
    for i in range(MAX_CATCHUP + 5):
        await chat(log, "busy", f"m{i}")
    frames = Frames()
    await catchup.rejoined(frames, [room_channel("quiet"), room_channel("busy")])
    assert frames.texts(room_channel("quiet")) == []
    assert len(frames.texts(room_channel("busy"))) == MAX_CATCHUP
