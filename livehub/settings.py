"""One frozen settings object read from flags and environment."""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from livehub.interactions.rules import DEFAULT_BUDGET_SECONDS
from livehub.rooms.eventlog import COMMIT_DEADLINE_SECONDS
from livehub.rooms.redis_store import DEFAULT_POOL_SIZE, DEFAULT_WAIT_SECONDS

ENV_PREFIX = "LIVEHUB_"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("./livehub-data")
    redis_url: str | None = None
    redis_pool_size: int = DEFAULT_POOL_SIZE  # per node; a larger burst waits for one
    redis_timeout: float = DEFAULT_WAIT_SECONDS  # for a free connection, and for each command
    secret: str | None = field(default=None, repr=False)
    admin_key: str | None = field(default=None, repr=False)
    public_url: str | None = None
    allowed_origins: tuple[str, ...] = ()
    ice_servers: tuple[str, ...] = ()
    turn_secret: str | None = field(default=None, repr=False)
    turn_ttl: int = 24 * 3600
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tick_ms: int = 100
    heartbeat_seconds: float = 5.0  # presence lease renewal; a lease lasts 3 of them
    max_danmaku_per_second: int = 30
    max_message_chars: int = 200
    max_frame_bytes: int = 64 * 1024
    rule_budget_ms: float = DEFAULT_BUDGET_SECONDS * 1000  # rules' CPU time on one message
    token_ttl_seconds: int = 7 * 24 * 3600
    retention_days: int = 0  # keep raw events and reports forever
    sqlite_synchronous: str = "FULL"
    commit_deadline_seconds: float = COMMIT_DEADLINE_SECONDS
    demo: bool = True
    log_level: str = "INFO"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host}:{self.port}"

    @property
    def tls(self) -> bool:
        """Serve HTTPS directly (both a certificate and its key are given)."""
        return self.tls_cert is not None and self.tls_key is not None

    @property
    def origins(self) -> list[str]:
        """Origins allowed to open the live socket (the public URL's by default)."""
        if self.allowed_origins:
            return list(self.allowed_origins)
        return [self.base_url]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags for ``livehub serve``; each also reads ``LIVEHUB_<NAME>`` from the environment."""
    parser.add_argument("--host", help="address to listen on (LIVEHUB_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (LIVEHUB_PORT)")
    parser.add_argument("--data-dir", help="where the database and keys live (LIVEHUB_DATA_DIR)")
    parser.add_argument("--redis-url", help="share state between nodes (LIVEHUB_REDIS_URL)")
    parser.add_argument(
        "--redis-pool-size",
        type=int,
        help="Redis connections per node, default 200; more concurrent calls wait"
        " (LIVEHUB_REDIS_POOL_SIZE)",
    )
    parser.add_argument(
        "--redis-timeout",
        help="seconds to wait for a Redis connection and for each command, default 2;"
        " past it the call is refused as unavailable (LIVEHUB_REDIS_TIMEOUT)",
    )
    parser.add_argument("--secret", help="token signing secret (LIVEHUB_SECRET)")
    parser.add_argument("--admin-key", help="admin API key (LIVEHUB_ADMIN_KEY)")
    parser.add_argument(
        "--public-url", help="URL viewers reach this server at (LIVEHUB_PUBLIC_URL)"
    )
    parser.add_argument(
        "--allowed-origins",
        help="comma-separated origins for the live socket (LIVEHUB_ALLOWED_ORIGINS)",
    )
    parser.add_argument(
        "--ice-server",
        "--ice-servers",
        dest="ice_servers",
        action="append",
        help="STUN/TURN URL for WebRTC peers, repeatable or comma-separated; none by default"
        " (LIVEHUB_ICE_SERVERS)",
    )
    parser.add_argument(
        "--turn-secret",
        help="shared secret of a TURN server in use-auth-secret mode (coturn): TURN URLs"
        " get time-limited credentials (LIVEHUB_TURN_SECRET; prefer the variable, flags"
        " show in ps)",
    )
    parser.add_argument(
        "--turn-ttl",
        help="seconds a TURN credential stays valid, default 86400 (LIVEHUB_TURN_TTL)",
    )
    parser.add_argument(
        "--tls-cert",
        help="serve HTTPS with this PEM certificate (chain); needs --tls-key (LIVEHUB_TLS_CERT)",
    )
    parser.add_argument("--tls-key", help="the PEM private key of --tls-cert (LIVEHUB_TLS_KEY)")
    parser.add_argument("--tick-ms", type=int, help="danmaku batch tick (LIVEHUB_TICK_MS)")
    parser.add_argument(
        "--heartbeat-seconds",
        help="how often a node renews its presence lease, default 5; a dead node's viewers"
        " are released after 3 (LIVEHUB_HEARTBEAT_SECONDS)",
    )
    parser.add_argument(
        "--max-danmaku-per-second",
        type=int,
        help="default per-viewer danmaku cap for new rooms, 0 = unlimited",
    )
    parser.add_argument(
        "--retention-days",
        type=int,
        help="delete raw events and stored reports older than this, 0 = keep forever"
        " (LIVEHUB_RETENTION_DAYS)",
    )
    parser.add_argument(
        "--rule-budget-ms",
        type=float,
        help="CPU time a room's moderation rules may take on one message; a regex rule"
        " that runs past it is disabled (LIVEHUB_RULE_BUDGET_MS, default"
        f" {DEFAULT_BUDGET_SECONDS * 1000:g})",
    )
    parser.add_argument("--sqlite-synchronous", choices=["FULL", "NORMAL"])
    parser.add_argument(
        "--commit-deadline-seconds",
        help="refuse an event with 'unavailable' when the database has not committed it"
        f" within this time, default {COMMIT_DEADLINE_SECONDS:g} (LIVEHUB_COMMIT_DEADLINE_SECONDS)",
    )
    parser.add_argument("--no-demo", dest="demo", action="store_const", const=False)
    parser.add_argument("--log-level")


def _coerce(name: str, raw: Any) -> Any:
    if name in (
        "port",
        "tick_ms",
        "max_danmaku_per_second",
        "max_message_chars",
        "max_frame_bytes",
        "token_ttl_seconds",
        "retention_days",
        "redis_pool_size",
    ):
        value = int(raw)
        if name == "redis_pool_size" and value < 1:
            raise ValueError(f"the Redis pool needs at least 1 connection, not {value}")
        if name == "port" and not 0 <= value <= 65535:
            raise ValueError(f"port must be 0-65535, not {value}")
        if name == "retention_days" and value < 0:
            raise ValueError(f"retention days must be 0 (keep forever) or more, not {value}")
        return value
    if name == "redis_timeout":
        return _number(raw, 0, 60, "seconds", subject="the Redis timeout ", open_low=True)
    if name == "rule_budget_ms":
        return _number(raw, 0.01, 10_000, "ms", subject="the rule budget ")
    if name == "turn_ttl":
        return _turn_ttl(raw)
    if name == "commit_deadline_seconds":
        return _number(raw, 0, 3600, "seconds", open_low=True)
    if name == "heartbeat_seconds":
        return _number(raw, 0.1, 300, "seconds", subject="a heartbeat ")
    if name == "turn_secret":
        if not str(raw).strip():
            raise ValueError("the TURN secret is empty")
        return str(raw)
    if name == "public_url":
        url = str(raw).strip().rstrip("/")
        if not url.startswith(("http://", "https://")) or len(url) <= len("https://"):
            raise ValueError(f"{raw!r} is not an http:// or https:// URL")
        return url
    if name in ("tls_cert", "tls_key") and not str(raw).strip():
        raise ValueError("must be the path of a PEM file")
    if name in ("data_dir", "tls_cert", "tls_key"):
        return Path(raw)
    if name == "allowed_origins":
        items = raw if isinstance(raw, tuple) else str(raw).split(",")
        origins = tuple(o.strip().rstrip("/") for o in items if o.strip())
        for origin in origins:
            if not ORIGIN.match(origin):
                raise ValueError(f"{origin!r} is not an origin such as https://live.example.com")
        return origins
    if name == "ice_servers":
        return _ice_servers(raw)
    if name == "demo" and isinstance(raw, str):
        return raw.lower() not in ("0", "false", "no")
    return raw


ORIGIN = re.compile(r"\A(\*|https?://[A-Za-z0-9.\-\[\]:]+)\Z")


def _ice_servers(raw: Any) -> tuple[str, ...]:
    items = raw if isinstance(raw, list | tuple) else [raw]
    urls = tuple(u.strip() for item in items for u in str(item).split(",") if u.strip())
    for url in urls:
        if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
            raise ValueError(f"{url!r} is not a stun:, stuns:, turn: or turns: URL")
    return urls


def _number(
    raw: Any, low: float, high: float, unit: str, *, subject: str = "", open_low: bool = False
) -> float:
    """A number from ``low`` (excluded with ``open_low``) to ``high``, or a ValueError
    saying so (float's own for text that is no number)."""
    value = float(raw)
    if (value <= low if open_low else value < low) or not value <= high:
        span = f"over {low:g} and at most {high:g}" if open_low else f"{low:g}-{high:g}"
        raise ValueError(f"{subject}must be {span} {unit}, not {value:g}")
    return value


TURN_TTL_RANGE = (60, 30 * 24 * 3600)


def _turn_ttl(raw: Any) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a number of seconds") from None
    low, high = TURN_TTL_RANGE
    if not low <= value <= high:
        raise ValueError(f"a TURN credential lifetime must be {low}-{high} seconds, not {value}")
    return value


def load(args: argparse.Namespace | None = None, env: dict[str, str] | None = None) -> Settings:
    """Flags win over environment, environment over defaults.

    Raises ValueError naming the flag or variable when a value is unusable.
    """
    env = dict(os.environ) if env is None else env
    values: dict[str, Any] = {}
    for f in fields(Settings):
        if f.name == "extra":
            continue
        raw = getattr(args, f.name, None) if args is not None else None
        source = "--" + f.name.replace("_", "-")
        if raw is None:
            source = ENV_PREFIX + f.name.upper()
            raw = env.get(source)
        if raw is not None:
            try:
                values[f.name] = _coerce(f.name, raw)
            except ValueError as exc:
                raise ValueError(f"{source}: {exc}") from exc
    if ("tls_cert" in values) != ("tls_key" in values):
        raise ValueError(
            "--tls-cert and --tls-key (LIVEHUB_TLS_CERT, LIVEHUB_TLS_KEY) go together: "
            "give both or neither"
        )
    if "turn_secret" in values and not any(
        url.startswith(("turn:", "turns:")) for url in values.get("ice_servers", ())
    ):
        raise ValueError(
            "--turn-secret (LIVEHUB_TURN_SECRET) needs a turn: or turns: URL in --ice-server"
        )
    return Settings(**values)
