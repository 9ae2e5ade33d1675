"""Putting video frames together from RTP packets: whole frames only, in order.

The packets are real: frames encoded by aiortc's own H.264 and VP8 encoders
(which cut them into RTP payloads as they would go on the wire), then lost,
reordered, duplicated and delayed here on purpose. What comes out must be
byte for byte the frames that went in, minus any frame that lost a packet and
the frames after it up to the next keyframe; and a real decoder must decode
all of it without one complaint.
"""

from __future__ import annotations

import fractions
import random
from collections.abc import Iterator
from dataclasses import dataclass

import av
import pytest
from aiortc.codecs import depayload
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket
from fake_clock import Clock

from livehub.media.assembly import AssemblyConfig, Frame, FrameAssembler, RtpIn
from livehub.media.forwarding import WholeFrames, _ForwardingQueue, is_keyframe
from livehub.media.relay import EncodedFrame

W, H = 320, 240
FRAMES = 90
KEY_EVERY = 30
SSRC = 1234


@dataclass(frozen=True)
class Sent:
    """One frame as the publisher sent it: its bytes and its packets."""

    index: int
    timestamp: int
    data: bytes
    keyframe: bool
    packets: list[RtpIn]


def _picture(rng: random.Random, n: int) -> av.VideoFrame:
    frame = av.VideoFrame(W, H, "yuv420p")
    for plane in frame.planes[1:]:
        plane.update(b"\x80" * (plane.line_size * plane.height))
    plane = frame.planes[0]
    plane.update(rng.randbytes(plane.line_size * H))  # noise: P frames of several packets
    frame.pts = n * 3000
    frame.time_base = fractions.Fraction(1, 90000)
    return frame


def _encode(mime: str, first_sequence: int) -> list[Sent]:
    rng = random.Random(7)
    encoder = H264Encoder() if mime == "video/H264" else Vp8Encoder()
    codec = RTCRtpCodecParameters(mimeType=mime, clockRate=90000, payloadType=96)
    sequence = first_sequence
    sent: list[Sent] = []
    for n in range(FRAMES):
        payloads, timestamp = encoder.encode(_picture(rng, n), force_keyframe=n % KEY_EVERY == 0)
        packets = []
        for i, payload in enumerate(payloads):
            data = depayload(codec, payload)
            marker = i == len(payloads) - 1
            packets.append(RtpIn(SSRC, sequence & 0xFFFF, timestamp, marker, payload, data))
            sequence += 1
        data = b"".join(p.data for p in packets)
        sent.append(Sent(n, timestamp, data, is_keyframe(mime, data), packets))
    assert sent[0].keyframe and sum(s.keyframe for s in sent) >= 3
    assert max(len(s.packets) for s in sent if not s.keyframe) > 2
    return sent


@pytest.fixture(scope="module")
def h264() -> list[Sent]:
    return _encode("video/H264", 1000)


@pytest.fixture(scope="module")
def vp8() -> list[Sent]:
    return _encode("video/VP8", 1000)


@pytest.fixture(scope="module")
def wrapping() -> list[Sent]:
    return _encode("video/H264", 65536 - 150)  # the sequence number wraps mid-stream


def next_keyframe(sent: list[Sent], after: int) -> int:
    return next(s.index for s in sent[after + 1 :] if s.keyframe)


def assembler(mime: str, clock: Clock | None = None, **config: float) -> FrameAssembler:
    return FrameAssembler(
        mime,
        lambda data: is_keyframe(mime, data),
        AssemblyConfig(**config),  # type: ignore[arg-type]
        clock or Clock(0.0),
    )


def packets(sent: list[Sent]) -> list[RtpIn]:
    return [p for s in sent for p in s.packets]


def feed(asm: FrameAssembler, stream: list[RtpIn]) -> list[Frame]:
    return [frame for packet in stream for frame in asm.add(packet)]


def which(sent: list[Sent], out: list[Frame]) -> list[int]:
    """The indices of the sent frames that came out, each checked byte for byte."""
    by_timestamp = {s.timestamp: s for s in sent}
    found = []
    for frame in out:
        original = by_timestamp[frame.timestamp]
        assert frame.data == original.data and frame.keyframe == original.keyframe
        found.append(original.index)
    return found


def runs(indices: list[int]) -> Iterator[list[int]]:
    run: list[int] = []
    for i in indices:
        if run and i != run[-1] + 1:
            yield run
            run = []
        run.append(i)
    if run:
        yield run


def assert_whole_runs(sent: list[Sent], indices: list[int], damaged: set[int]) -> None:
    """Frames come out in order, each run of them starting on a keyframe, none damaged,
    and every frame that could be shown was (after a damaged one, from the next keyframe)."""
    assert indices == sorted(indices)
    for run in runs(indices):
        assert sent[run[0]].keyframe, f"a run starts at frame {run[0]}, not a keyframe"
    assert not damaged & set(indices)
    expected, waiting = [], False
    for s in sent:
        waiting = (waiting or s.index in damaged) and not (s.keyframe and s.index not in damaged)
        if not waiting:
            expected.append(s.index)
    assert indices == expected


def decode_all(mime: str, out: list[Frame]) -> int:
    """Decode every frame with FFmpeg's decoder; any error fails the test."""
    decoder = av.CodecContext.create("h264" if mime == "video/H264" else "vp8", "r")
    decoded = 0
    for frame in out:
        decoded += len(decoder.decode(av.Packet(frame.data)))
    decoded += len(decoder.decode(None))
    return decoded


@pytest.mark.parametrize("codec", ["h264", "vp8", "wrapping"])
def test_every_frame_comes_out_whole_and_in_order(
    codec: str, request: pytest.FixtureRequest
) -> None:
    sent: list[Sent] = request.getfixturevalue(codec)
    asm = assembler("video/VP8" if codec == "vp8" else "video/H264")
    out = feed(asm, packets(sent))
    assert which(sent, out) == list(range(FRAMES))
    assert asm.stats.frames == FRAMES and asm.stats.partial == asm.stats.dependent == 0
    assert not asm.lossy


@pytest.mark.parametrize("codec", ["h264", "vp8"])
def test_packets_reordered_within_the_window_are_put_back_in_order(
    codec: str, request: pytest.FixtureRequest
) -> None:
    sent: list[Sent] = request.getfixturevalue(codec)
    mime = "video/VP8" if codec == "vp8" else "video/H264"
    stream = packets(sent)
    rng = random.Random(3)
    shuffled: list[RtpIn] = []
    for start in range(0, len(stream), 6):
        group = stream[start : start + 6]
        rng.shuffle(group)
        shuffled += group
    duplicated = [p for p in shuffled for _ in range(1 + (p.sequence % 7 == 0))]
    asm = assembler(mime)
    out = feed(asm, duplicated)
    assert which(sent, out) == list(range(FRAMES))
    assert asm.stats.reordered > 0 and asm.stats.late > 0  # the duplicates
    assert asm.stats.lost == asm.stats.partial == 0
    assert decode_all(mime, out) == FRAMES


@pytest.mark.parametrize("codec", ["h264", "vp8"])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_frame_missing_a_packet_and_its_dependents_never_come_out(
    codec: str, where: str, request: pytest.FixtureRequest
) -> None:
    sent: list[Sent] = request.getfixturevalue(codec)
    mime = "video/VP8" if codec == "vp8" else "video/H264"
    victim = next(s for s in sent[5:] if len(s.packets) >= 3 and not s.keyframe)
    lost = {"first": 0, "middle": 1, "last": len(victim.packets) - 1}[where]
    stream = [p for p in packets(sent) if p is not victim.packets[lost]]
    asm = assembler(mime, reorder_packets=8)
    out = feed(asm, stream)
    indices = which(sent, out)
    assert_whole_runs(sent, indices, {victim.index})
    assert asm.stats.lost == 1 and asm.stats.partial == 1
    assert asm.stats.dependent == next_keyframe(sent, victim.index) - victim.index - 1
    assert decode_all(mime, out) == len(out)


@pytest.mark.parametrize("codec", ["h264", "vp8"])
def test_a_lost_keyframe_packet_loses_the_keyframe_and_waits_for_the_next(
    codec: str, request: pytest.FixtureRequest
) -> None:
    sent: list[Sent] = request.getfixturevalue(codec)
    mime = "video/VP8" if codec == "vp8" else "video/H264"
    key = sent[KEY_EVERY]
    assert key.keyframe
    for lost in (0, len(key.packets) // 2):  # the parameter sets / VP8 header, or the middle
        stream = [p for p in packets(sent) if p is not key.packets[lost]]
        asm = assembler(mime, reorder_packets=8)
        out = feed(asm, stream)
        assert_whole_runs(sent, which(sent, out), {key.index})
        assert decode_all(mime, out) == len(out)


def test_a_whole_lost_frame_stops_every_frame_up_to_the_next_keyframe(h264: list[Sent]) -> None:
    victim = h264[40]
    stream = [p for p in packets(h264) if p not in victim.packets]
    asm = assembler("video/H264", reorder_packets=8)
    out = feed(asm, stream)
    indices = which(h264, out)
    assert_whole_runs(h264, indices, {victim.index})
    resumed = next_keyframe(h264, 40)
    assert 40 not in indices and 41 not in indices and resumed in indices
    assert asm.stats.lost == len(victim.packets)
    assert not asm.lossy, "the keyframe ended the wait"


def test_lossy_asks_for_a_keyframe_until_one_comes(h264: list[Sent]) -> None:
    victim = h264[35].packets[0]
    asm = assembler("video/H264", reorder_packets=4)
    lossy_at: list[int] = []
    for packet in packets(h264):
        if packet is victim:
            continue
        for frame in asm.add(packet):
            assert frame.timestamp != h264[35].timestamp
        if asm.lossy:
            lossy_at.append(packet.sequence)
    assert lossy_at, "the loss was noticed"
    key = h264[next_keyframe(h264, 35)].packets[-1].sequence
    assert max(lossy_at) < key, "no longer lossy once the next keyframe came out"
    assert min(lossy_at) <= h264[37].packets[0].sequence, "noticed within a few packets"


def test_a_missing_packet_is_waited_for_then_given_up(h264: list[Sent]) -> None:
    clock = Clock(0.0)
    asm = assembler("video/H264", clock, reorder_wait=0.2, reorder_packets=10_000)
    stream = packets(h264)
    victim = h264[10].packets[1]
    at = stream.index(victim)
    out = feed(asm, stream[:at])
    held = feed(asm, stream[at + 1 : at + 20])
    assert held == [], "frames after the gap wait for the missing packet"
    clock.advance(0.1)
    late = asm.add(victim)  # it came in time (a retransmission)
    assert which(h264, late)[:2] == [10, 11], "the held frames come out at once"
    assert asm.stats.lost == 0

    asm = assembler("video/H264", clock, reorder_wait=0.2, reorder_packets=10_000)
    out = feed(asm, stream[:at]) + feed(asm, stream[at + 1 : at + 20])
    clock.advance(0.25)
    out += feed(asm, stream[at + 20 :])
    assert asm.add(victim) == [] and asm.stats.late == 1, "too late: given up"
    assert_whole_runs(h264, which(h264, out), {10})


def test_padding_packets_take_a_number_and_give_no_frame(h264: list[Sent]) -> None:
    stream: list[RtpIn] = []
    shift = 0
    for s in h264:
        for p in s.packets:
            stream.append(p._replace(sequence=(p.sequence + shift) & 0xFFFF))
        if s.index % 10 == 5:  # padding after the frame, with its timestamp
            shift += 1
            last = stream[-1]
            stream.append(
                last._replace(sequence=(last.sequence + 1) & 0xFFFF, payload=b"", data=b"")
            )
    asm = assembler("video/H264")
    out = feed(asm, stream)
    assert which(h264, out) == list(range(FRAMES))
    assert all(frame.data for frame in out)


def test_a_new_ssrc_starts_again_on_a_keyframe(h264: list[Sent]) -> None:
    asm = assembler("video/H264")
    stream = packets(h264)
    half = stream.index(h264[45].packets[0])
    out = feed(asm, stream[:half])
    restarted = [p._replace(ssrc=99, sequence=(p.sequence + 5000) & 0xFFFF) for p in stream[half:]]
    out += feed(asm, restarted)
    assert_whole_runs(h264, which(h264, out), {45})  # from the next keyframe on
    assert asm.stats.restarts == 1


@pytest.mark.parametrize("codec", ["h264", "vp8"])
def test_under_random_loss_and_reordering_everything_out_decodes(
    codec: str, request: pytest.FixtureRequest
) -> None:
    sent: list[Sent] = request.getfixturevalue(codec)
    mime = "video/VP8" if codec == "vp8" else "video/H264"
    rng = random.Random(11)
    stream: list[RtpIn] = []
    dropped: set[int] = set()
    held: list[RtpIn] = []
    for s in sent:
        for p in s.packets:
            if rng.random() < 0.02:
                dropped.add(s.index)
                continue
            if rng.random() < 0.02:
                held.append(p)  # sent again after the next two packets
                continue
            stream.append(p)
            if held and len(stream) % 2 == 0:
                stream.append(held.pop(0))
    stream += held
    assert dropped, "the seed drops something"
    asm = assembler(mime, reorder_packets=16)
    out = feed(asm, stream)
    assert_whole_runs(sent, which(sent, out), dropped)
    assert decode_all(mime, out) == len(out) > 0


def test_whole_frames_asks_for_keyframes_at_most_as_often_as_allowed(h264: list[Sent]) -> None:
    clock = Clock(0.0)
    codec = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=96)
    forwarded: list[EncodedFrame] = []
    buffer = WholeFrames(
        {96: codec},
        _ForwardingQueue("video", forwarded.append),
        AssemblyConfig(reorder_packets=4),
        keyframe_min_interval=0.25,
        keyframe_retry=1.0,
        clock=clock,
    )
    plis = 0
    for s in h264:
        for i, p in enumerate(s.packets):
            if s.index in (10, 12) and i == 0:
                continue
            packet = RtpPacket(96, p.marker, p.sequence, p.timestamp, p.ssrc, p.payload)
            packet._data = p.data  # type: ignore[attr-defined]
            pli, frame = buffer.add(packet)
            assert frame is None  # frames go to the queue, not back to aiortc
            plis += pli
        clock.advance(1 / 30)
    # losses at frames 10 and 12: one request; the next keyframe (within a second)
    # answers it before a retry is due, so nothing more
    resumed = next_keyframe(h264, 12)
    assert resumed < 10 + 30
    assert plis == 1
    assert [f.timestamp for f in forwarded][:3] == [0, 3000, 6000]
    assert all(f.kind == "video" and f.data for f in forwarded)
    assert forwarded[10].keyframe and len(forwarded) == FRAMES - (resumed - 10)


def test_whole_frames_can_ask_through_the_relays_limiter_instead(h264: list[Sent]) -> None:
    codec = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=96)
    asked: list[int] = []
    buffer = WholeFrames(
        {96: codec},
        _ForwardingQueue("video", lambda frame: None),
        AssemblyConfig(reorder_packets=4),
        keyframe_min_interval=0.25,
        keyframe_retry=1.0,
        clock=Clock(0.0),
        request_keyframe=lambda: asked.append(1),
    )
    plis = 0
    for s in h264:
        for i, p in enumerate(s.packets):
            if s.index == 10 and i == 0:
                continue
            packet = RtpPacket(96, p.marker, p.sequence, p.timestamp, p.ssrc, p.payload)
            packet._data = p.data  # type: ignore[attr-defined]
            plis += buffer.add(packet)[0]
    assert plis == 0, "aiortc is not asked: the relay paces the requests"
    assert len(asked) >= next_keyframe(h264, 10) - 10 - 1, "asked while waiting, every frame"
    assert buffer.keyframes.sent == 0
