"""Faults benchmark: one chat load through a Redis restart and a node kill, counting losses.

    .venv/bin/python scripts/bench_faults.py            # 500 viewers, 50 msg/s, two nodes
    .venv/bin/python scripts/bench_faults.py --quick    # 100 viewers, 20 msg/s, shorter phases

Two ``livehub serve`` nodes share one redis-server and one data directory. Viewers
(raw Engine.IO/Socket.IO over websockets, cheap per frame) are split across the
nodes; senders send at a steady total rate, each chat with a client id, and retry
the same client id after ``retry_after`` whenever it is refused as ``unavailable``,
as the watch page does. Probe viewers on node A parse every frame and record every
message id they see (the rest only read). The run:

  steady -> Redis SIGKILLed for --outage s -> Redis restarted (same port, empty)
  -> steady -> node B SIGKILLed, its viewers reconnect to A -> steady -> drain

It prints, next to the target (there is no faster "baseline" for a fault; the
baseline here is the same load with no fault, the first steady phase):
  acked_undelivered   messages acked to a sender but missing at some probe (target 0)
  unanswered          events sent that never got an ack (target 0)
  resume_seconds      Redis restart -> first message sent after it acked and seen by
                      every probe (target < 2)
  count_error         |viewer count in the frames - viewers connected| one lease after
                      the node kill (target 0)
Figures, never assertions: the tests in tests/chaos/ assert the behaviour.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from bench_common import (
    HOST,
    PY,
    REPO,
    Children,
    free_port,
    http,
    log,
    machine_info,
    mint_tokens,
    random_secret,
    wait_healthz,
)
from redis_server import start_redis

ROOM = "faults"
NS = "/live"
ACK_TIMEOUT = 10.0  # an ack later than this counts as unanswered
LEASE_SECONDS = 15.0  # how long the count may take to converge after a node dies


@dataclass
class Viewer:
    index: int
    token: str
    probe: bool
    node: int
    ws: aiohttp.ClientWebSocketResponse | None = None
    seen: set[int] = field(default_factory=set)
    viewers: int | None = None  # the count in the last frame
    acks: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    next_ack: int = 0
    reader: asyncio.Task[None] | None = None


class Load:
    def __init__(self, args: argparse.Namespace, ports: list[int], secret: str) -> None:
        self.args = args
        self.ports = ports
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))  # one each
        tokens = mint_tokens(secret, ROOM, args.viewers, prefix="fault")
        self.viewers = [
            Viewer(i, t, probe=i < args.probes, node=0 if i < args.probes else i % 2)
            for i, t in enumerate(tokens)
        ]
        self.acked: dict[int, float] = {}  # message id -> when acked
        self.unanswered = 0
        self.refused = 0
        self.sent = 0

    async def connect(self, v: Viewer) -> None:
        port = self.ports[v.node]
        url = f"ws://{HOST}:{port}/socket.io/?EIO=4&transport=websocket"
        v.ws = await self.http.ws_connect(url, origin=f"http://{HOST}:{port}", max_msg_size=0)
        await v.ws.receive()  # Engine.IO open
        await v.ws.send_str("40" + NS + "," + json.dumps({"room": ROOM, "token": v.token}))
        while True:
            msg = await v.ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"viewer {v.index}: {msg.type}")
            if msg.data.startswith("40" + NS):
                break
            if msg.data.startswith("44" + NS):
                raise RuntimeError(f"viewer {v.index} refused: {msg.data}")
        v.reader = asyncio.ensure_future(self.read(v))

    async def read(self, v: Viewer) -> None:
        assert v.ws is not None
        prefix_event, prefix_ack = "42" + NS + ",", "43" + NS + ","
        async for msg in v.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data: str = msg.data
            if data == "2":
                await v.ws.send_str("3")
            elif data.startswith(prefix_ack):
                body = data[len(prefix_ack) :]
                cut = body.index("[")
                future = v.acks.pop(int(body[:cut]), None)
                if future is not None and not future.done():
                    future.set_result(json.loads(body[cut:])[0])
            elif v.probe and data.startswith(prefix_event):
                event, *payload = json.loads(data[len(prefix_event) :])
                if event in ("batch", "welcome") and payload:
                    frame = payload[0]
                    v.seen.update(m["id"] for m in frame.get("messages", ()))
                    if isinstance(frame.get("viewers"), int):
                        v.viewers = frame["viewers"]

    async def call(self, v: Viewer, event: str, payload: Any) -> Any:
        assert v.ws is not None
        v.next_ack += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        v.acks[v.next_ack] = future
        await v.ws.send_str(f"42{NS},{v.next_ack}" + json.dumps([event, payload]))
        return await asyncio.wait_for(future, ACK_TIMEOUT)

    async def send_one(self, v: Viewer, k: int) -> None:
        payload = {"text": f"fault {k}", "client_id": f"fault-{k}"}
        self.sent += 1
        while True:
            try:
                ack = await self.call(v, "chat", payload)
            except (TimeoutError, ConnectionError, RuntimeError, AssertionError):
                self.unanswered += 1
                return
            if ack.get("ok"):
                self.acked[int(ack["id"])] = time.monotonic()
                return
            error = ack.get("error", {})
            if error.get("code") != "unavailable":
                return  # a rate limit, say: not a fault, not retried
            self.refused += 1
            await asyncio.sleep(float(error.get("details", {}).get("retry_after", 1.0)))

    async def send_for(self, seconds: float, k0: int) -> int:
        k, tasks = await self.start_sending(seconds, k0)
        await asyncio.gather(*tasks)
        return k

    async def start_sending(
        self, seconds: float, k0: int
    ) -> tuple[int, list[asyncio.Future[None]]]:
        """Send for ``seconds``; the sends (retrying while refused) may still be running."""
        senders = [v for v in self.viewers if not v.probe and v.ws is not None]
        senders = [v for v in senders if not v.ws.closed]  # type: ignore[union-attr]
        interval = 1.0 / self.args.rate
        k, tasks = k0, list[asyncio.Future[None]]()
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            sender = senders[k % len(senders)]
            tasks.append(asyncio.ensure_future(self.send_one(sender, k)))
            k += 1
            await asyncio.sleep(interval)
        return k, tasks

    def probes_missing(self, ids: set[int]) -> int:
        return sum(len(ids - v.seen) for v in self.viewers if v.probe)

    async def until_delivered(self, ids: set[int], within: float) -> bool:
        deadline = time.monotonic() + within
        while self.probes_missing(ids):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def close(self) -> None:
        for v in self.viewers:
            if v.ws is not None and not v.ws.closed:
                await v.ws.close()
        await self.http.close()


def serve(
    children: Children, port: int, data: Path, redis_url: str, secret: str, logs: Path
) -> Any:
    argv = [PY, "-m", "livehub", "serve", "--host", HOST, "--port", str(port)]
    argv += ["--data-dir", str(data), "--redis-url", redis_url, "--secret", secret]
    argv += ["--admin-key", "bench-admin", "--no-demo", "--log-level", "WARNING"]
    return children.start(argv, core=None, log=logs / f"node-{port}.log", cwd=REPO)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    children = Children()
    tmp = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    redis = start_redis(tmp / "redis")
    secret = random_secret()
    ports = [free_port(), free_port()]
    nodes = [serve(children, p, tmp / "data", redis.url, secret, tmp) for p in ports]
    load: Load | None = None
    try:
        for port, node in zip(ports, nodes, strict=True):
            wait_healthz(port, node)
        settings = {"chat_rate_per_second": 100, "chat_burst": 100, "max_danmaku_per_second": 0}
        status, body = http(
            "POST",
            f"http://{HOST}:{ports[0]}/api/rooms",
            {"id": ROOM, "title": "Faults", "settings": settings},
            token="bench-admin",
        )
        assert status == 201, (status, body)
        load = Load(args, ports, secret)
        sem = asyncio.Semaphore(100)

        async def connect(v: Viewer) -> None:
            async with sem:
                await load.connect(v)  # type: ignore[union-attr]

        await asyncio.gather(*(connect(v) for v in load.viewers))
        log(f"{len(load.viewers)} viewers connected")
        k = await load.send_for(args.phase, 0)
        steady_ok = await load.until_delivered(set(load.acked), 15)
        log(f"steady: {len(load.acked)} acked, delivered to every probe: {steady_ok}")

        redis.kill()
        log("redis killed")
        k, retrying = await load.start_sending(args.outage, k)
        redis = start_redis(tmp / "redis", port=redis.port)
        returned = time.monotonic()
        log("redis restarted (empty)")
        await asyncio.gather(*retrying)
        first_after: float | None = None
        before = set(load.acked)
        k1 = k
        k = await load.send_for(args.phase, k)
        after = {i for i, t in load.acked.items() if i not in before}
        await load.until_delivered(set(load.acked), 15)
        for mid in sorted(after, key=lambda i: load.acked[i]):  # type: ignore[union-attr]
            if not load.probes_missing({mid}):
                first_after = load.acked[mid] - returned
                break
        log(f"after the restart: {len(after)} acked (k {k1}..{k})")

        nodes[1].kill()
        nodes[1].wait(5)
        log("node B killed; its viewers reconnect to A")
        moved = [v for v in load.viewers if v.node == 1]
        for v in moved:
            v.node = 0
        await asyncio.gather(*(connect(v) for v in moved))
        k = await load.send_for(args.phase, k)
        await asyncio.sleep(LEASE_SECONDS)
        connected = sum(1 for v in load.viewers if v.ws is not None and not v.ws.closed)
        probe = next(v for v in load.viewers if v.probe)
        k = await load.send_for(1.0, k)  # a fresh frame with the count
        await load.until_delivered(set(load.acked), 15)
        counted = probe.viewers
        all_ids = set(load.acked)
        return {
            "machine": machine_info(),
            "viewers": args.viewers,
            "rate": args.rate,
            "outage_s": args.outage,
            "sent": load.sent,
            "acked": len(all_ids),
            "refused_unavailable": load.refused,
            "acked_undelivered": load.probes_missing(all_ids),
            "unanswered": load.unanswered,
            "resume_seconds": None if first_after is None else round(max(first_after, 0.0), 2),
            "count_error": None if counted is None else abs(counted - connected),
            "counted": counted,
            "connected": connected,
            "baseline_steady_delivered": steady_ok,
        }
    finally:
        if load is not None:
            await load.close()
        children.stop_all()
        redis.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--viewers", type=int, default=500)
    ap.add_argument("--probes", type=int, default=20)
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--phase", type=float, default=5.0, help="seconds of each steady phase")
    ap.add_argument("--outage", type=float, default=10.0, help="seconds Redis stays down")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.viewers, args.rate, args.phase, args.outage = 100, 20.0, 3.0, 3.0
    random.seed(1)
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2))
    targets = {"acked_undelivered": 0, "unanswered": 0, "resume_seconds": "< 2", "count_error": 0}
    for name, target in targets.items():
        print(f"{name:>20}: {result[name]!s:>8}   target {target}")


if __name__ == "__main__":
    main()
