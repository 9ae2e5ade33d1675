"""The forwarding relay on its own: fan-out, keyframe gating, slow viewers, publisher changes.

No peer connections here: frames are made up, the clock is a counter, and a
viewer's sender is played by a task calling ``Subscription.next``.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from livehub.media.relay import (
    EncodedFrame,
    KeyframeRequests,
    Kind,
    RelayClosed,
    RelayConfig,
    RoomRelay,
    Subscription,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Publisher:
    """Counts the PLIs the relay sends and makes numbered frames."""

    def __init__(self, connected: bool = True) -> None:
        self.plis = 0
        self.connected = connected
        self.count = 0

    def ask(self) -> bool:
        if not self.connected:
            return False
        self.plis += 1
        return True

    def video(self, key: bool = False) -> EncodedFrame:
        self.count += 1
        return EncodedFrame("video", self.count.to_bytes(4, "big"), self.count * 3000, key)

    def audio(self) -> EncodedFrame:
        self.count += 1
        return EncodedFrame("audio", self.count.to_bytes(4, "big"), self.count * 960, True)


def number(frame: EncodedFrame) -> int:
    return int.from_bytes(frame.data, "big")


def subscription(relay: RoomRelay, viewer_id: str, kind: Kind = "video") -> Subscription:
    viewer = relay.viewer(viewer_id)
    assert viewer is not None
    return viewer.subscriptions[kind]


def drain(relay: RoomRelay, viewer: str, kind: Kind = "video") -> list[EncodedFrame]:
    sub = subscription(relay, viewer, kind)
    out = []
    while (frame := sub._take()) is not None:
        out.append(frame)
    return out


def make(config: RelayConfig | None = None) -> tuple[RoomRelay, Publisher, Clock]:
    clock = Clock()
    relay = RoomRelay("room", config or RelayConfig(keyframe_min_interval=0.0), clock)
    pub = Publisher()
    relay.attach_publisher({"video": "video/H264", "audio": "audio/opus"}, pub.ask)
    return relay, pub, clock


def test_every_viewer_gets_every_frame_in_order_after_a_keyframe() -> None:
    relay, pub, _ = make()
    for i in range(3):
        relay.add_viewer(f"v{i}", ("video",))
    frames = [pub.video(key=(n % 10 == 0)) for n in range(30)]
    for frame in frames:
        relay.publish(frame)
    for i in range(3):
        got = [number(f) for f in drain(relay, f"v{i}")]
        assert got == list(range(1, 31))
        assert subscription(relay, f"v{i}").stats.dropped == 0


def test_a_new_video_viewer_waits_for_a_keyframe_and_asks_for_one() -> None:
    relay, pub, _ = make()
    relay.publish(pub.video(key=True))
    relay.add_viewer("late", ("video", "audio"))
    assert pub.plis == 1, "joining asks the publisher for a keyframe"
    relay.publish(pub.video())  # a delta frame: useless to a viewer without the keyframe
    relay.publish(pub.audio())  # audio needs no keyframe
    relay.publish(pub.video(key=True))
    relay.publish(pub.video())
    assert [number(f) for f in drain(relay, "late")] == [4, 5]
    assert [number(f) for f in drain(relay, "late", "audio")] == [3]
    first = subscription(relay, "late")
    assert first.stats.dropped == 1 and not first.waiting_keyframe


def test_keyframe_requests_are_rate_limited_and_retried() -> None:
    clock = Clock()
    pub = Publisher()
    asks = KeyframeRequests(pub.ask, min_interval=0.25, retry=1.0, clock=clock)
    assert asks.request() and pub.plis == 1
    clock.now += 0.1
    assert not asks.request(), "too soon after the last request"
    clock.now += 0.3
    assert not asks.request(), "one is outstanding: wait for the retry interval"
    asks.keyframe_arrived()
    assert asks.request(), "the last one was answered, so ask again"
    clock.now += 1.1
    assert asks.request(), "unanswered for a second: retry"
    assert pub.plis == 3 == asks.sent


def test_an_unconnected_publisher_does_not_use_up_a_request() -> None:
    clock = Clock()
    pub = Publisher(connected=False)
    asks = KeyframeRequests(pub.ask, min_interval=0.25, retry=1.0, clock=clock)
    assert not asks.request()
    pub.connected = True
    assert asks.request(), "the refused attempt did not start the rate limit"
    assert asks.sent == 1


def test_waiting_viewers_keep_asking_until_a_keyframe_comes() -> None:
    relay, pub, clock = make(RelayConfig(keyframe_min_interval=0.25, keyframe_retry=1.0))
    relay.add_viewer("v", ("video",))
    assert pub.plis == 1
    for _ in range(6):  # a publisher that ignores PLI (OBS does)
        clock.now += 0.2
        relay.publish(pub.video())
    assert pub.plis == 2, "re-asked once the retry interval passed, not on every frame"
    relay.publish(pub.video(key=True))
    clock.now += 2
    relay.publish(pub.video())
    assert pub.plis == 2, "nobody waits any more"


def test_a_slow_viewer_drops_to_the_next_keyframe_without_stalling_others() -> None:
    relay, pub, _ = make(RelayConfig(max_video_frames=10, keyframe_min_interval=0.0))
    relay.add_viewer("fast", ("video",))
    relay.add_viewer("slow", ("video",))
    fast: list[int] = []
    for n in range(30):
        relay.publish(pub.video(key=(n in (0, 25))))
        fast += [number(f) for f in drain(relay, "fast")]  # the fast viewer keeps up
    assert fast == list(range(1, 31))
    slow = subscription(relay, "slow")
    assert slow.stats.resyncs >= 1
    got = [number(f) for f in drain(relay, "slow")]
    assert got[0] == 26, "after overflowing, the slow viewer restarts on the next keyframe"
    assert got == list(range(26, 31))
    # the first join asked, the second found that request outstanding, the overflow asked again
    assert pub.plis == 2


def test_a_viewer_whose_frames_grow_stale_resyncs() -> None:
    relay, pub, clock = make(RelayConfig(max_lag=1.0, keyframe_min_interval=0.0))
    relay.add_viewer("v", ("video", "audio"))
    relay.publish(pub.video(key=True))
    relay.publish(pub.video())
    relay.publish(pub.audio())
    clock.now += 2.0  # the sender stalled for two seconds
    relay.publish(pub.video())
    relay.publish(pub.audio())
    assert drain(relay, "v") == [], "stale video is dropped and the viewer waits for a keyframe"
    assert [number(f) for f in drain(relay, "v", "audio")] == [5], "stale audio is skipped"
    relay.publish(pub.video(key=True))
    assert [number(f) for f in drain(relay, "v")] == [6]


def test_audio_overflow_drops_the_oldest_packets() -> None:
    relay, pub, _ = make(RelayConfig(max_audio_frames=5))
    relay.add_viewer("v", ("audio",))
    for _ in range(8):
        relay.publish(pub.audio())
    assert [number(f) for f in drain(relay, "v", "audio")] == [4, 5, 6, 7, 8]


async def test_next_waits_for_frames_and_ends_when_the_viewer_is_removed() -> None:
    relay, pub, _ = make()
    viewer = relay.add_viewer("v", ("video",))
    sub = viewer.subscriptions["video"]
    waiting = asyncio.create_task(sub.next())
    await asyncio.sleep(0)
    assert not waiting.done()
    relay.publish(pub.video(key=True))
    assert number(await asyncio.wait_for(waiting, 1)) == 1
    pending = asyncio.create_task(sub.next())
    await asyncio.sleep(0)
    relay.remove_viewer("v")
    with pytest.raises(RelayClosed):
        await asyncio.wait_for(pending, 1)
    assert relay.viewer_count == 0


def test_close_ends_everyone_and_refuses_new_viewers() -> None:
    relay, _, _ = make()
    relay.add_viewer("a", ("video",))
    relay.add_viewer("b", ("audio",))
    assert sorted(relay.close()) == ["a", "b"]
    assert relay.viewer_count == 0 and relay.closed and not relay.publishing
    with pytest.raises(RelayClosed):
        relay.add_viewer("c", ("video",))


def test_a_returning_publisher_continues_the_timeline_for_existing_viewers() -> None:
    relay, pub, _ = make()
    relay.add_viewer("v", ("video",))
    relay.publish(pub.video(key=True))
    relay.publish(pub.video())
    before = [f.timestamp for f in drain(relay, "v")]
    relay.detach_publisher()
    relay.publish(pub.video(key=True))  # a stale frame from the old connection is ignored
    back = Publisher()  # the new connection's timestamps start again near zero
    dropped = relay.attach_publisher({"video": "video/H264"}, back.ask)
    assert dropped == []
    relay.publish(back.video())  # not a keyframe: the viewer waits for one
    relay.publish(back.video(key=True))
    relay.publish(back.video())
    after = [f.timestamp for f in drain(relay, "v")]
    assert len(after) == 2
    assert after[0] > before[-1] and after[1] - after[0] == 3000


def test_a_publisher_with_another_codec_drops_the_viewers_who_cannot_follow() -> None:
    relay, _, _ = make()
    relay.add_viewer("video-viewer", ("video",))
    relay.add_viewer("audio-viewer", ("audio",))
    relay.detach_publisher()
    dropped = relay.attach_publisher({"video": "video/VP8", "audio": "audio/opus"}, Publisher().ask)
    assert dropped == ["video-viewer"]
    assert relay.viewer("audio-viewer") is not None and relay.viewer_count == 1


def test_frames_before_a_publisher_attaches_are_ignored() -> None:
    relay = RoomRelay("room")
    relay.add_viewer("v", ("audio",))
    relay.publish(EncodedFrame("audio", b"x", 0, True))
    assert relay.frames_in == 0 and drain(relay, "v", "audio") == []


def test_every_viewer_gets_the_same_frame_object_and_its_shared_payload_cache() -> None:
    relay = RoomRelay("room")
    publisher = Publisher()
    relay.attach_publisher({"video": "video/H264"}, publisher.ask)
    subs = [relay.add_viewer(f"v{n}", ("video",)).subscriptions["video"] for n in range(3)]
    original = publisher.video(key=True)
    original.packetized["video/h264"] = [b"stale"]
    relay.publish(original)
    taken = [sub._take() for sub in subs]
    assert taken[0] is taken[1] is taken[2], "one shared frame, so payloads are cut once"
    assert taken[0] is not None and taken[0].packetized == {}, "rebasing starts a fresh cache"
    assert taken[0] == original.at(taken[0].timestamp), "the cache takes no part in equality"


def test_timestamps_keep_counting_up_across_the_32_bit_wrap() -> None:
    relay, _pub, _ = make()
    relay.add_viewer("v", ("video",))
    near_wrap = (1 << 32) - 2 * 3000  # a publisher whose RTP clock is about to wrap
    raw = [(near_wrap + n * 3000) % (1 << 32) for n in range(5)]
    assert raw[2] < raw[1]  # it wraps between the second and the third frame
    for n, timestamp in enumerate(raw):
        relay.publish(EncodedFrame("video", n.to_bytes(4, "big"), timestamp, n == 0))
    out = [f.timestamp for f in drain(relay, "v")]
    assert [b - a for a, b in itertools.pairwise(out)] == [3000] * 4
    assert out[0] == near_wrap and out[-1] == near_wrap + 4 * 3000 > (1 << 32)


def test_a_frame_a_little_back_is_not_taken_for_a_whole_wrap_forward() -> None:
    relay, _pub, _ = make()
    relay.add_viewer("v", ("video",))
    for n, timestamp in enumerate([9000, 12000, 10500, 15000]):
        relay.publish(EncodedFrame("video", n.to_bytes(4, "big"), timestamp, n == 0))
    assert [f.timestamp for f in drain(relay, "v")] == [9000, 12000, 10500, 15000]


def test_a_frame_without_bytes_is_never_handed_on() -> None:
    relay, pub, _ = make()
    relay.add_viewer("v", ("video", "audio"))
    relay.publish(pub.video(key=True))
    relay.publish(EncodedFrame("video", b"", 99 * 3000, False))
    relay.publish(EncodedFrame("audio", b"", 99 * 960, True))
    relay.publish(pub.video())
    assert [number(f) for f in drain(relay, "v")] == [1, 2]
    assert drain(relay, "v", "audio") == []
    assert relay.frames_in == 2
