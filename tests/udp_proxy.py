"""A lossy network path for WebRTC media, as a small asyncio UDP proxy.

``LossyPath`` stands between a publisher and the server with two sockets: the
publisher is told (in the answer) that the server is at ``toward_server``, the
server is told (in the offer) that the publisher is at ``toward_publisher``.
Neither learns the other's real address, so every packet, ICE checks
included, goes through here. On the way in (publisher to server) it drops and
reorders a share of the RTP packets, decided by a seeded RNG in packet order,
so a run is repeatable; STUN, DTLS and RTCP pass untouched, and so does
everything on the way back.

With ``lose_retransmissions`` a packet the proxy dropped stays lost, as on a
path where NACKs come too late to help: its retransmissions are dropped too,
whether resent as they were (same SSRC and sequence number) or as RTX (every
packet of a payload type the offer maps to ``rtx``).
"""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import dataclass, field
from typing import Any

Address = tuple[str, int]

CANDIDATE = re.compile(
    r"^a=candidate:(?P<foundation>\S+) (?P<component>\d+) (?P<transport>\S+) (?P<priority>\d+)"
    r" (?P<ip>\S+) (?P<port>\d+) typ (?P<type>\S+)(?P<rest>.*)$"
)
RTX = re.compile(r"^a=rtpmap:(\d+) rtx/", re.MULTILINE)


def is_rtp(data: bytes) -> bool:
    """An RTP (not RTCP) packet: version 2, and not an RTCP packet type (RFC 5761)."""
    return len(data) >= 12 and data[0] >> 6 == 2 and not 192 <= data[1] <= 223


def udp_host_candidate(sdp: str) -> Address:
    """The first IPv4 UDP host candidate of an SDP."""
    for line in sdp.splitlines():
        found = CANDIDATE.match(line)
        if (
            found
            and found["transport"].lower() == "udp"
            and found["type"] == "host"
            and ":" not in found["ip"]
        ):
            return found["ip"], int(found["port"])
    raise AssertionError(f"no IPv4 UDP host candidate in\n{sdp}")


def through(sdp: str, address: Address) -> str:
    """``sdp`` with its one IPv4 UDP host candidate moved to ``address`` and every other
    candidate removed, so the peer can only reach it there."""
    out = []
    for line in sdp.splitlines(keepends=True):
        found = CANDIDATE.match(line.rstrip("\r\n"))
        if found is None:
            out.append(line)
            continue
        if found["transport"].lower() != "udp" or found["type"] != "host" or ":" in found["ip"]:
            continue
        ending = line[len(line.rstrip("\r\n")) :]
        out.append(
            f"a=candidate:{found['foundation']} {found['component']} {found['transport']}"
            f" {found['priority']} {address[0]} {address[1]} typ host{found['rest']}{ending}"
        )
    return "".join(out)


def rtx_payload_types(sdp: str) -> set[int]:
    return {int(pt) for pt in RTX.findall(sdp)}


@dataclass
class PathStats:
    forwarded: int = 0  # RTP packets passed on toward the server
    dropped: int = 0
    reordered: int = 0
    retransmissions_lost: int = 0
    other: int = 0  # STUN, DTLS, RTCP: passed on untouched


class _Side(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Any) -> None:
        self._on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._on_datagram(data, addr)


@dataclass
class LossyPath:
    """Publisher <-> here <-> server, lossy on the way in. ``start`` binds both sockets."""

    host: str
    drop: float = 0.02
    reorder: float = 0.02
    seed: int = 1
    reorder_depth: int = 3  # a held packet goes on after this many others
    lose_retransmissions: bool = False
    stats: PathStats = field(default_factory=PathStats)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lost_types: set[int] = set()
        self._dropped: set[tuple[bytes, bytes]] = set()  # (SSRC, sequence number)
        self._publisher: Address | None = None  # learnt from its first packet
        self._server: Address | None = None
        self._held: list[tuple[int, bytes]] = []  # (packets still to let by, datagram)
        self._from_publisher = _Side(self._inbound)
        self._from_server = _Side(self._outbound)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self._from_publisher, local_addr=(self.host, 0))
        await loop.create_datagram_endpoint(lambda: self._from_server, local_addr=(self.host, 0))

    @property
    def toward_server(self) -> Address:
        """Where the publisher sends: put in the answer as the server's candidate."""
        return self._address(self._from_publisher)

    @property
    def toward_publisher(self) -> Address:
        """Where the server sends: put in the offer as the publisher's candidate."""
        return self._address(self._from_server)

    @staticmethod
    def _address(side: _Side) -> Address:
        assert side.transport is not None, "start() first"
        host, port = side.transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def offer(self, sdp: str) -> str:
        """The publisher's offer as the server must see it (and where the publisher is)."""
        self._publisher = udp_host_candidate(sdp)
        if self.lose_retransmissions:
            self._lost_types = rtx_payload_types(sdp)
        return through(sdp, self.toward_publisher)

    def answer(self, sdp: str) -> str:
        """The server's answer as the publisher must see it (and where the server is)."""
        self._server = udp_host_candidate(sdp)
        return through(sdp, self.toward_server)

    # the two directions

    def _inbound(self, data: bytes, addr: Address) -> None:
        self._publisher = addr
        if self._server is None:
            return
        if not is_rtp(data):
            self.stats.other += 1
            self._send_in(data)
            return
        key = (data[8:12], data[2:4])
        resent = data[1] & 0x7F in self._lost_types or key in self._dropped
        if self.lose_retransmissions and resent:
            self.stats.retransmissions_lost += 1
            return
        roll = self._rng.random()
        if roll < self.drop:
            self.stats.dropped += 1
            self._dropped.add(key)
            return
        if roll < self.drop + self.reorder:
            self.stats.reordered += 1
            self._held.append((self.reorder_depth, data))
            return
        self._send_in(data)
        self.stats.forwarded += 1
        still: list[tuple[int, bytes]] = []
        for left, held in self._held:
            if left <= 1:
                self._send_in(held)
                self.stats.forwarded += 1
            else:
                still.append((left - 1, held))
        self._held = still

    def _send_in(self, data: bytes) -> None:
        assert self._from_server.transport is not None and self._server is not None
        self._from_server.transport.sendto(data, self._server)

    def _outbound(self, data: bytes, addr: Address) -> None:
        if self._publisher is not None and self._from_publisher.transport is not None:
            self._from_publisher.transport.sendto(data, self._publisher)

    def close(self) -> None:
        for side in (self._from_publisher, self._from_server):
            if side.transport is not None:
                side.transport.close()
