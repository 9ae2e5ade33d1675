"""The relay subscriber that feeds the recorder and the HLS packager, offline.

A sink that only keeps what it is given stands in for a file; frames are made
up. What matters is what reaches the sink: never a frame whose reference is
missing from it.
"""

from __future__ import annotations

import asyncio

from livehub.media.relay import EncodedFrame, RelayConfig, RoomRelay
from livehub.media.remux import FeedConfig, RelayFeed, Timed


class Kept:
    def __init__(self) -> None:
        self.frames: list[Timed] = []
        self.closed = False

    def write(self, frames: list[Timed]) -> None:
        self.frames += frames

    def close(self) -> None:
        self.closed = True


async def test_a_video_frame_the_timeline_refuses_sends_the_feed_to_the_next_keyframe() -> None:
    relay = RoomRelay("room", RelayConfig(keyframe_min_interval=0.0))
    asked: list[int] = []

    def ask() -> bool:
        asked.append(1)
        return True

    relay.attach_publisher({"video": "video/H264"}, ask)
    sink = Kept()
    feed = RelayFeed(relay, "rec", sink, ("video",), FeedConfig())
    feed.start()
    at_start = len(asked)  # a new subscriber asks for a keyframe
    sent = [
        (0, True, b"k1"),
        (3000, False, b"p1"),
        (6000, False, b"p2"),
        (4500, False, b"back"),  # goes back in time: the timeline cannot place it
        (9000, False, b"p3"),  # refers to "back": must not be written
        (12000, True, b"k2"),
        (15000, False, b"p4"),
    ]
    for timestamp, key, data in sent:
        relay.publish(EncodedFrame("video", data, timestamp, key))
        await asyncio.sleep(0)
    await feed.stop()
    assert sink.closed
    assert [t.data for t in sink.frames] == [b"k1", b"p1", b"p2", b"k2", b"p4"]
    assert len(asked) == at_start + 1, "a keyframe was asked for when the frame was refused"
