"""The folded stream as every section of the report reads it.

Once :class:`~livehub.reports.builder.ReportBuilder` has folded every event, a
:class:`Folded` fixes the stream's bounds and works out, once, what the
sections (``build_summary``, ``build_people``, ``build_interactions``) all need:
each person's presence clipped to the stream, their watch time and interaction
count, who is a viewer rather than staff, and the pseudonyms.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Mapping

from livehub.reports.model import Person
from livehub.reports.tallies import ViewerTally


def pseudonym(stream: str, viewer_id: str) -> str:
    """First 12 hex of HMAC-SHA256(key = stream id, message = viewer id)."""
    return hmac.new(stream.encode(), viewer_id.encode(), hashlib.sha256).hexdigest()[:12]


def ratio(num: float, den: float) -> float | None:
    return round(num / den, 4) if den else None


class Folded:
    """The stream from ``start`` to ``end`` and everyone in it (staff included)."""

    def __init__(
        self, stream: str, people: Mapping[str, ViewerTally], start: float, end: float
    ) -> None:
        self.stream = stream
        self.start = start
        self.end = end
        self.duration = end - start
        self.minutes = max(1, math.ceil(self.duration / 60))
        self._by_id = people
        self._pids: dict[str, str] = {}
        self.clipped: dict[str, list[tuple[float, float]]] = {}
        for v in people.values():
            self.clipped[v.id] = self._clip(v)
        self.people = list(people.values())
        self.viewers = [v for v in self.people if not v.staff]
        self.watch = {v.id: sum(b - a for a, b in self.clipped[v.id]) for v in self.people}
        #: each viewer's interactions (staff left out)
        self.interactions = {
            v.id: v.messages
            + v.like_events
            + v.votes
            + v.answers
            + v.questions
            + v.upvotes
            + v.draw_entries
            + v.clicks
            for v in self.viewers
        }

    def pid(self, viewer_id: str) -> str:
        found = self._pids.get(viewer_id)
        if found is None:
            found = self._pids[viewer_id] = pseudonym(self.stream, viewer_id)
        return found

    def name(self, viewer_id: str) -> str:
        v = self._by_id.get(viewer_id)
        return v.name if v is not None else viewer_id

    def person(self, viewer_id: str) -> Person:
        return Person(pid=self.pid(viewer_id), name=self.name(viewer_id))

    def minute(self, ts: float) -> int:
        return min(max(int((ts - self.start) // 60), 0), self.minutes - 1)

    def minute_end(self, m: int) -> float:
        return self.end if m == self.minutes - 1 else self.start + 60.0 * (m + 1)

    def present_at_end(self, v: ViewerTally) -> bool:
        spans = self.clipped[v.id]
        return bool(spans) and spans[-1][1] >= self.end

    def _clip(self, v: ViewerTally) -> list[tuple[float, float]]:
        spans = list(v.intervals)
        if v.open_at is not None:
            spans.append((v.open_at, self.end))
        clipped: list[tuple[float, float]] = []
        for a, b in spans:
            a = max(a, self.start)
            b = min(b, self.end)
            if b > a:
                if clipped and a <= clipped[-1][1]:  # touching or overlapping: one span
                    clipped[-1] = (clipped[-1][0], max(b, clipped[-1][1]))
                else:
                    clipped.append((a, b))
        return clipped
