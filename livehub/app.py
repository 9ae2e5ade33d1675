"""The composition root: builds every part from Settings and wires them together."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import socketio
from aiohttp import web

from livehub import keys
from livehub.interactions import normalise
from livehub.interactions.batcher import Batcher
from livehub.interactions.cap_share import CapShares
from livehub.interactions.chat import ChatService
from livehub.interactions.draws import DrawService
from livehub.interactions.likes import Likes
from livehub.interactions.moderation import Moderation
from livehub.interactions.offers import OfferService
from livehub.interactions.polls import PollService
from livehub.interactions.questions import QuestionService
from livehub.interactions.quiz import QuizService
from livehub.media.hls import HlsConfig, HlsPackager
from livehub.media.recorder import RecordingConfig, RecordingManager
from livehub.media.sessions import MediaConfig
from livehub.rooms.counters import Counters
from livehub.rooms.eventlog import EventLog
from livehub.rooms.memory_store import MemoryStore
from livehub.rooms.models import RoomSettings
from livehub.rooms.node_presence import NodePresence
from livehub.rooms.presence import Presence
from livehub.rooms.recovery import Recovery
from livehub.rooms.redis_store import RedisStore
from livehub.rooms.repository import RoomRepository
from livehub.rooms.service import RoomService
from livehub.rooms.store import StateStore
from livehub.settings import Settings
from livehub.signaling.auth import Auth
from livehub.signaling.catchup import Catchup
from livehub.signaling.chat_events import ChatEvents
from livehub.signaling.context import Services
from livehub.signaling.draw_events import DrawEvents
from livehub.signaling.fanout import Fanout
from livehub.signaling.hls_api import HLS, RECORDINGS, HlsApi
from livehub.signaling.http_api import RestApi
from livehub.signaling.live import LiveNamespace
from livehub.signaling.moderation_events import ModerationEvents
from livehub.signaling.offer_events import OfferEvents
from livehub.signaling.pages import Pages, security_headers
from livehub.signaling.poll_events import PollEvents
from livehub.signaling.privacy_api import PrivacyApi
from livehub.signaling.question_events import QuestionEvents
from livehub.signaling.quiz_events import QuizEvents
from livehub.signaling.replies import error_middleware
from livehub.signaling.report_api import ReportApi
from livehub.signaling.socket import attach, build_server, shutdown
from livehub.signaling.whip import MEDIA, WhipEndpoints
from livehub.supervisor import Supervisor

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
DB_FILE = "livehub.db"


@dataclass(frozen=True)
class Startup:
    """What the serve command tells the operator once."""

    admin_key: str
    admin_key_created: bool


SERVICES = web.AppKey("services", Services)
LIVE = web.AppKey("live", LiveNamespace)
STARTUP = web.AppKey("startup", Startup)


async def _open_store(settings: Settings, supervisor: Supervisor) -> StateStore:
    if settings.redis_url:
        return await RedisStore.connect(
            settings.redis_url,
            pool_size=settings.redis_pool_size,
            wait_seconds=settings.redis_timeout,
            on_health=lambda error: supervisor.report("store", _cause(error)),
        )
    return MemoryStore()


def _cause(error: BaseException | None) -> str | None:
    return None if error is None else f"{type(error).__name__}: {error}"


async def build_services(settings: Settings) -> tuple[Services, Startup]:
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    secret = settings.secret or keys.load_or_create(data / "secret.key")[0]
    if settings.admin_key:
        admin_key, created = settings.admin_key, False
    else:
        admin_key, created = keys.load_or_create(data / "admin.key")
    supervisor = Supervisor()
    store = await _open_store(settings, supervisor)
    log = await EventLog.open(
        data / DB_FILE,
        settings.sqlite_synchronous,
        commit_deadline=settings.commit_deadline_seconds,
        on_health=lambda error: supervisor.report("database", error),
    )
    repo = await RoomRepository.open(data / DB_FILE, settings.sqlite_synchronous)
    defaults = RoomSettings(
        max_danmaku_per_second=settings.max_danmaku_per_second,
        max_message_chars=settings.max_message_chars,
    )
    rooms = RoomService(repo, store, log, defaults)
    counters = Counters(store)
    normalise.prepare()
    moderation = Moderation(
        store, log, rooms, repo, counters, rule_budget=settings.rule_budget_ms / 1000
    )
    await moderation.restore_mutes()
    services = Services(
        settings=settings,
        store=store,
        log=log,
        rooms=rooms,
        counters=counters,
        presence=Presence(store, log, counters),
        chat=ChatService(store, log, counters, moderation),
        likes=Likes(store, log, counters),
        moderation=moderation,
        auth=Auth(secret, admin_key),
        supervisor=supervisor,
    )
    return services, Startup(admin_key, created)


async def create_app(settings: Settings) -> web.Application:
    services, startup = await build_services(settings)
    sio = build_server(
        settings,
        Catchup(services.log),
        lambda error: services.supervisor.report("pubsub", error),
    )
    node_id = secrets.token_hex(4)  # this run of this node (health, media, cap shares)
    tick = settings.tick_ms / 1000
    fanout = Fanout(
        sio,
        Batcher(tick),
        services.rooms,
        services.presence,
        services.counters,
        tick,
        services.log,
        CapShares(services.store, node_id, tick) if settings.redis_url else None,
    )
    node = NodePresence(
        services.presence,
        services.store,
        services.rooms.get,
        node_id,
        settings.heartbeat_seconds,
        shared=bool(settings.redis_url),
    )
    live = LiveNamespace(services, fanout, node)
    ChatEvents(services, live)
    ModerationEvents(services, live)
    media = WhipEndpoints(
        services,
        live,
        MediaConfig.build(
            settings.ice_servers,
            settings.extra.get("media"),
            settings.turn_secret,
            settings.turn_ttl,
        ),
        node_id,
    )
    qa = QuestionService(services.store, services.log, services.counters, services.moderation)
    questions = QuestionEvents(services, live, qa)
    polls = PollEvents(
        services,
        live,
        PollService(services.store, services.log, services.counters, services.moderation),
    )
    quiz_service = QuizService(services.store, services.log, services.counters)
    quizzes = QuizEvents(services, live, quiz_service)
    draw_service = DrawService(
        services.store,
        services.log,
        services.counters,
        services.rooms,
        services.presence,
        services.moderation,
        services.auth.secret,
    )
    draws = DrawEvents(services, live, draw_service)
    offer_service = OfferService(services.store, services.log, services.counters)
    offers = OfferEvents(services, live, offer_service)
    # The log is the truth: each part that keeps live state in the store rebuilds it.
    recovery = Recovery(services.store, services.rooms.open_room_ids)
    recovery.add_room(polls.rebuild)
    recovery.add_room(quiz_service.rebuild)
    recovery.add_room(qa.rebuild)  # Q&A queue, settings, question states, upvotes
    recovery.add_room(draw_service.rebuild)  # draws: entrants, commitments, results
    recovery.add_room(offer_service.rebuild)  # offer cards and click counts
    recovery.add_room(node.settle)  # joins a crash left open (memory store)
    recovery.add_node(node.renew)  # this node's connections, when the store lost them
    loops: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
        "recovery": recovery.watch,
        "fanout": fanout.run,
        "presence": node.run,
        "watch-time": node.accrue_forever,
        # Interaction features register their events on `live` and their loops here.
        "draw-entries": draws.entries.run,
        "draw-expiry": draws.expire_forever,
        "offer-clicks": offers.clicks.run,
        "poll-tallies": polls.tallies.run,
        "poll-expiry": polls.expire_forever,
        "quiz-counts": quizzes.counts.run,
        "question-votes": questions.votes.run,
    }
    sio.register_namespace(live)
    app = web.Application(
        middlewares=[security_headers(list(settings.allowed_origins)), error_middleware],
        client_max_size=settings.max_frame_bytes,
    )
    app[SERVICES] = services
    app[LIVE] = live
    app[STARTUP] = startup
    app[MEDIA] = media.sessions
    api = RestApi(services, live, node_id=node_id)
    api.on_stream_stopped.append(media.stream_stopped)  # first: the publisher is cut at once
    app.add_routes(api.routes())
    reports = await ReportApi.create(services, settings.data_dir / DB_FILE)
    api.on_stream_stopped.append(reports.stream_stopped)
    media.on_stream_stopped.append(reports.stream_stopped)
    app.add_routes(reports.routes())
    app.add_routes(draws.routes())
    app.add_routes(offers.routes())
    app.add_routes(media.routes())
    # Recording and live HLS: relay subscribers started and ended with the publisher's media.
    recordings = RecordingManager(
        settings.data_dir / "recordings", RecordingConfig.build(settings.extra.get("recording"))
    )
    hls = HlsPackager(settings.data_dir / "hls", HlsConfig.build(settings.extra.get("hls")))
    media.on_media_live += [recordings.start, hls.start]
    media.on_media_ended += [recordings.stop, hls.stop]
    api.on_stream_stopped += [recordings.stream_stopped, hls.stream_stopped]
    api.recording_of = lambda room, stream: (
        info.public() if (info := recordings.info(room, stream)) else None
    )
    app.add_routes(HlsApi(services, hls, recordings).routes())
    app[RECORDINGS], app[HLS] = recordings, hls
    privacy = PrivacyApi.build(
        services, settings.data_dir / DB_FILE, reports.reports, recordings.purge_older_than
    )
    if settings.retention_days > 0:
        loops["retention"] = privacy.purge_forever  # purges once at start, then daily
    loops["recording-recovery"] = recordings.recover_forever
    app.add_routes(privacy.routes())
    app.add_routes(Pages(WEB_DIR).routes())
    app.on_shutdown.append(media.shutdown)  # before attach's: viewers hear of the pause
    attach(sio, app, live.leave_everyone)
    app.cleanup_ctx.append(_background(sio, loops, services, recovery))
    # After _background, so it is cleaned up first: report builds stop while the log is open.
    app.cleanup_ctx.append(reports.reports.lifecycle)
    # After _background, so it is cleaned up first: streams end while the log is open.
    # Before media.cleanup, so cleaned up after it: files are finalised once streams ended.
    app.cleanup_ctx.append(recordings.lifecycle)
    app.cleanup_ctx.append(hls.lifecycle)
    app.cleanup_ctx.append(media.cleanup)
    return app


def _background(
    sio: socketio.AsyncServer,
    loops: dict[str, Callable[[], Coroutine[Any, Any, None]]],
    services: Services,
    recovery: Recovery,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def run(app: web.Application) -> AsyncIterator[None]:
        await recovery.rebuild()  # before the first viewer: open interactions are back
        for name, loop in loops.items():
            services.supervisor.add(name, loop)
        await services.supervisor.start()
        yield
        await services.supervisor.stop()
        await shutdown(sio)
        await services.log.close()
        await services.rooms.shutdown()
        await services.store.close()

    return run
