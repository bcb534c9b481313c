"""A wire-level emulator of the Klout v2 API as it was served behind Mashery.

Facts modelled (see ``reference/upstream-apis.md`` section 1):

- Every call needs ``?key=``; a missing or wrong key answers 403 with a JSON body.
- Identity lookups (screen name, Twitter id, reverse), the user and score documents, and the v1
  ``klout.json`` batch call, with Klout ids as strings (some are 17-18 digits long).
- An unknown handle, a person without a score and a person who opted out at Klout are answered
  **identically**: that ambiguity is the real-world harm scoregate exists to contain. How they are
  answered is a setting (:class:`UnknownStyle`), because the real v2 behaviour is unconfirmed.
- Mashery limits, enforced exactly: at most ``rate_per_second`` accepted calls in any sliding
  one-second window of arrival times (403 ``ERR_403_DEVELOPER_OVER_QPS``) and at most
  ``daily_quota`` accepted calls per UTC day (403 ``ERR_403_DEVELOPER_OVER_RATE``), both with
  ``text/xml`` bodies. Refused calls consume neither the window nor the quota.

The order in which a call is judged, and how it is counted:

1. key check: a bad key is counted in ``bad_key`` and answered at once;
2. hard faults (a person in ``unavailable_screen_names``, then a seeded draw among
   "service too busy" 503, dropped connection and forced Over-Qps 403): counted under ``faults``.
   These calls reached the upstream, so they are in ``calls_total``, but they were not served, so
   they use neither quota nor rate window;
3. limits: quota first (an exhausted day answers Over-Rate even when the window is also full), then
   the rate window; refusals are counted in ``over_rate`` / ``over_qps`` and ``over_limit_calls``;
4. the call is **accepted**: it uses one unit of quota and a slot of the window, its arrival time is
   recorded, and a seeded draw may make it slow (``faults.slow``) before it is answered.

So ``calls_total == bad_key + sum(hard faults) + over_limit_calls + accepted`` always holds.
Admin endpoints under ``/_emulator/`` need no key and are not counted.
"""

from __future__ import annotations

import hmac
import logging
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from typing_extensions import override

__all__ = [
    "KloutEndpoint",
    "KloutFault",
    "KloutFaults",
    "KloutPerson",
    "KloutSettings",
    "KloutState",
    "UnknownStyle",
    "create_klout_app",
    "max_in_window",
]

_SECONDS_PER_DAY = 86_400
_RATE_WINDOW_SECONDS = 1.0
_BAD_KEY_BODY = {
    "error": 403,
    "description": "Invalid or unprovided API key. All calls must have a key.",
}
_NO_USERS_V1_BODY = {"status": 200, "headers": [], "body": {"error": "No users"}}
#: what a dropped response declares, so the client knows the body was cut short
_DROPPED_BODY_PREFIX = b'{"id": "'
_DROPPED_DECLARED_LENGTH = 64

#: how uvicorn's error log for an unfinished response begins
_INCOMPLETE_LOG = "ASGI callable returned without completing response"
#: set inside the request task that deliberately leaves its response incomplete
_DELIBERATE_DROP: ContextVar[bool] = ContextVar("emulator_deliberate_drop", default=False)


class UnknownStyle(StrEnum):
    """How Klout answers a handle it will not score (unknown, unscored or opted out alike)."""

    #: HTTP 200 ``{"error": "No users"}``
    NO_USERS = "no_users"
    #: HTTP 404 with a JSON error body
    NOT_FOUND = "404"
    #: HTTP 596 with an empty body, as reported by a Klout developer
    STATUS_596 = "596"
    #: HTTP 200 ``{}``: no ``id`` at all
    EMPTY_200 = "empty_200"


class KloutEndpoint(StrEnum):
    """The emulated operations; the keys of the per-path counters."""

    IDENTITY_TWITTER = "identity.twitter"
    IDENTITY_TW = "identity.tw"
    IDENTITY_KLOUT_TW = "identity.klout.tw"
    USER = "user"
    USER_SCORE = "user.score"
    V1_KLOUT = "v1.klout"


class KloutFault(StrEnum):
    """Kinds of injected fault; the keys of ``stats()["faults"]``."""

    #: the person is in ``unavailable_screen_names``: always 503 "Service too busy"
    ALWAYS_UNAVAILABLE = "always_unavailable"
    #: 503 "Service too busy"
    SERVICE_BUSY = "service_busy"
    #: the response is started, then the connection is closed mid-body
    DROPPED = "dropped"
    #: a Mashery Over-Qps 403 although the window has room
    FORCED_OVER_QPS = "forced_over_qps"
    #: an accepted call answered after ``slow_seconds``
    SLOW = "slow"


class _Verdict(StrEnum):
    """How one call is answered before (or instead of) the endpoint's own answer."""

    ACCEPTED = "accepted"
    BAD_KEY = "bad_key"
    OVER_QPS = "over_qps"
    OVER_RATE = "over_rate"
    ALWAYS_UNAVAILABLE = "always_unavailable"
    SERVICE_BUSY = "service_busy"
    DROPPED = "dropped"
    FORCED_OVER_QPS = "forced_over_qps"


@dataclass(frozen=True, slots=True)
class KloutPerson:
    """One person Klout knows. ``score=None`` means Klout knows the handle but has no score.

    Klout answers only for a person with a score who has not opted out; for anyone else it gives
    the same answer as for a handle it never heard of.

    Ids are strings: some Klout ids have 17-18 digits and must never pass through a float.
    """

    screen_name: str
    klout_id: str
    twitter_id: str
    score: float | None
    opted_out: bool = False
    day_change: float = 0.0
    week_change: float = 0.0
    month_change: float = 0.0


class KloutSettings(BaseModel):
    """Limits and answer style; replaceable at runtime (``POST /_emulator/settings``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate_per_second: int = Field(default=10, ge=1)
    daily_quota: int = Field(default=10_000, ge=0)
    unknown_style: UnknownStyle = UnknownStyle.NO_USERS


class KloutFaults(BaseModel):
    """Injected faults. Shares are probabilities per call, drawn from a ``seed``-ed generator.

    ``service_busy_share + dropped_share + over_qps_share`` must not exceed 1 (one draw picks at
    most one of them); ``slow_share`` is drawn separately for accepted calls. Setting faults
    re-seeds the generator, so the same settings and the same call sequence give the same answers.
    ``unavailable_screen_names`` are stored lower-cased and matched case-insensitively.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    service_busy_share: float = Field(default=0.0, ge=0.0, le=1.0)
    dropped_share: float = Field(default=0.0, ge=0.0, le=1.0)
    over_qps_share: float = Field(default=0.0, ge=0.0, le=1.0)
    slow_share: float = Field(default=0.0, ge=0.0, le=1.0)
    slow_seconds: float = Field(default=0.5, ge=0.0, le=60.0)
    unavailable_screen_names: frozenset[str] = frozenset()
    seed: int = 0

    @field_validator("unavailable_screen_names")
    @classmethod
    def _lower_case_names(cls, names: frozenset[str]) -> frozenset[str]:
        return frozenset(name.lower() for name in names)

    @model_validator(mode="after")
    def _exclusive_shares_fit(self) -> KloutFaults:
        if self.service_busy_share + self.dropped_share + self.over_qps_share > 1.0:
            raise ValueError("service_busy_share + dropped_share + over_qps_share exceeds 1")
        return self

    def is_unavailable(self, screen_name: str) -> bool:
        """Whether ``screen_name`` is always answered with 503."""
        return screen_name.lower() in self.unavailable_screen_names


@dataclass(slots=True)
class _Usage:
    """Every counter and the limiter state; replaced whole on reset."""

    max_recorded: int
    calls_total: int = 0
    bad_key: int = 0
    accepted: int = 0
    over_qps: int = 0
    over_rate: int = 0
    faults: Counter[KloutFault] = field(default_factory=Counter)
    by_path: Counter[KloutEndpoint] = field(default_factory=Counter)
    by_person: Counter[str] = field(default_factory=Counter)
    #: the UTC day (days since the epoch) ``quota_used`` belongs to; ``None`` before any call
    quota_day: int | None = None
    quota_used: int = 0
    #: accepted arrival times inside the current rate window
    window: deque[float] = field(default_factory=deque)
    #: the last ``max_recorded`` accepted arrival times
    arrivals: deque[float] = field(init=False)

    def __post_init__(self) -> None:
        self.arrivals = deque(maxlen=self.max_recorded)


@dataclass(frozen=True, slots=True)
class _Admission:
    verdict: _Verdict
    delay_seconds: float = 0.0


def max_in_window(timestamps: Iterable[float], window_seconds: float = 1.0) -> int:
    """The largest number of ``timestamps`` inside any half-open window ``(t - w, t]``.

    The same window shape the emulator enforces, so a benchmark can check "never over the limit".
    """
    ordered = sorted(timestamps)
    best = 0
    start = 0
    for end, instant in enumerate(ordered):
        while ordered[start] <= instant - window_seconds:
            start += 1
        best = max(best, end - start + 1)
    return best


class KloutState:
    """People, settings, faults and counters of one emulated Klout API; safe across threads.

    ``clock`` returns epoch seconds (UTC); it drives the rate window and the quota day, so tests
    can move time instead of waiting. Only the last ``max_recorded_arrivals`` accepted arrival
    times are kept.
    """

    def __init__(
        self,
        people: Iterable[KloutPerson] = (),
        *,
        api_key: str,
        settings: KloutSettings | None = None,
        faults: KloutFaults | None = None,
        clock: Callable[[], float] = time.time,
        max_recorded_arrivals: int = 100_000,
    ) -> None:
        self._lock = threading.Lock()
        self._api_key = api_key
        self._clock = clock
        self._settings = settings or KloutSettings()
        self._faults = faults or KloutFaults()
        self._random = random.Random(self._faults.seed)
        self._by_screen_name: dict[str, KloutPerson] = {}
        self._by_klout_id: dict[str, KloutPerson] = {}
        self._by_twitter_id: dict[str, KloutPerson] = {}
        self._max_recorded = max_recorded_arrivals
        self._usage = _Usage(max_recorded_arrivals)
        for person in people:
            self.add_person(person)

    # -- configuration -------------------------------------------------------------------------

    @property
    def api_key(self) -> str:
        """The one developer key this emulator accepts."""
        return self._api_key

    @property
    def settings(self) -> KloutSettings:
        """The current limits and unknown-answer style."""
        with self._lock:
            return self._settings

    @property
    def faults(self) -> KloutFaults:
        """The current fault settings."""
        with self._lock:
            return self._faults

    def configure(self, settings: KloutSettings) -> None:
        """Replace limits and style; the current window and the day's quota use are kept."""
        with self._lock:
            self._settings = settings

    def set_faults(self, faults: KloutFaults) -> None:
        """Replace every fault setting and re-seed the fault generator with ``faults.seed``."""
        with self._lock:
            self._faults = faults
            self._random = random.Random(faults.seed)

    def add_person(self, person: KloutPerson) -> None:
        """Add ``person``, replacing anyone with the same screen name (case-insensitive)."""
        with self._lock:
            old = self._by_screen_name.pop(person.screen_name.lower(), None)
            if old is not None:
                self._by_klout_id.pop(old.klout_id, None)
                self._by_twitter_id.pop(old.twitter_id, None)
            self._by_screen_name[person.screen_name.lower()] = person
            self._by_klout_id[person.klout_id] = person
            self._by_twitter_id[person.twitter_id] = person

    def person_by_screen_name(self, screen_name: str) -> KloutPerson | None:
        """The person with this screen name (any case), whether Klout answers for them or not."""
        with self._lock:
            return self._by_screen_name.get(screen_name.lower())

    def person_by_klout_id(self, klout_id: str) -> KloutPerson | None:
        """The person with this Klout id, whether Klout answers for them or not."""
        with self._lock:
            return self._by_klout_id.get(klout_id)

    def person_by_twitter_id(self, twitter_id: str) -> KloutPerson | None:
        """The person with this Twitter id, whether Klout answers for them or not."""
        with self._lock:
            return self._by_twitter_id.get(twitter_id)

    # -- admission -----------------------------------------------------------------------------

    def admit(
        self, *, key: str | None, endpoint: KloutEndpoint, screen_names: Sequence[str]
    ) -> _Admission:
        """Judge and count one call, in the order the module docstring gives.

        ``screen_names`` are the people the call refers to (for the always-unavailable set and
        the per-person counters); unknown ones are passed as asked.
        """
        with self._lock:
            usage = self._usage
            usage.calls_total += 1
            usage.by_path[endpoint] += 1
            for name in screen_names:
                usage.by_person[name.lower()] += 1
            if key is None or not hmac.compare_digest(key.encode(), self._api_key.encode()):
                usage.bad_key += 1
                return _Admission(_Verdict.BAD_KEY)
            hard_fault = self._draw_hard_fault_locked(screen_names)
            if hard_fault is not None:
                usage.faults[KloutFault(hard_fault.value)] += 1
                return _Admission(hard_fault)
            now = self._clock()
            refusal = self._check_limits_locked(now)
            if refusal is not None:
                return _Admission(refusal)
            usage.accepted += 1
            usage.quota_used += 1
            usage.window.append(now)
            usage.arrivals.append(now)
            if self._faults.slow_share > 0 and self._random.random() < self._faults.slow_share:
                usage.faults[KloutFault.SLOW] += 1
                return _Admission(_Verdict.ACCEPTED, self._faults.slow_seconds)
            return _Admission(_Verdict.ACCEPTED)

    def _draw_hard_fault_locked(self, screen_names: Sequence[str]) -> _Verdict | None:
        faults = self._faults
        if any(faults.is_unavailable(name) for name in screen_names):
            return _Verdict.ALWAYS_UNAVAILABLE
        if faults.service_busy_share + faults.dropped_share + faults.over_qps_share == 0:
            return None
        draw = self._random.random()
        for share, verdict in (
            (faults.service_busy_share, _Verdict.SERVICE_BUSY),
            (faults.dropped_share, _Verdict.DROPPED),
            (faults.over_qps_share, _Verdict.FORCED_OVER_QPS),
        ):
            if draw < share:
                return verdict
            draw -= share
        return None

    def _check_limits_locked(self, now: float) -> _Verdict | None:
        usage = self._usage
        day = int(now // _SECONDS_PER_DAY)
        if day != usage.quota_day:
            usage.quota_day = day
            usage.quota_used = 0
        if usage.quota_used >= self._settings.daily_quota:
            usage.over_rate += 1
            return _Verdict.OVER_RATE
        while usage.window and usage.window[0] <= now - _RATE_WINDOW_SECONDS:
            usage.window.popleft()
        if len(usage.window) >= self._settings.rate_per_second:
            usage.over_qps += 1
            return _Verdict.OVER_QPS
        return None

    # -- counters ------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """A JSON-ready snapshot of every counter, the settings and the faults.

        ``achieved_calls_per_second`` is ``(n - 1) / (last - first)`` over the recorded accepted
        arrivals (``None`` with fewer than two or a zero span); ``max_accepted_in_any_window`` is
        :func:`max_in_window` over them.
        """
        with self._lock:
            usage = self._usage
            arrivals = list(usage.arrivals)
            snapshot: dict[str, Any] = {
                "calls_total": usage.calls_total,
                "bad_key": usage.bad_key,
                "accepted": usage.accepted,
                "over_qps": usage.over_qps,
                "over_rate": usage.over_rate,
                "over_limit_calls": usage.over_qps + usage.over_rate,
                "faults": {kind.value: usage.faults[kind] for kind in KloutFault},
                "by_path": {endpoint.value: usage.by_path[endpoint] for endpoint in KloutEndpoint},
                "by_person": dict(usage.by_person),
                "quota_day": _iso_day(usage.quota_day),
                "quota_used": usage.quota_used,
                "accepted_arrivals": arrivals,
                "settings": self._settings.model_dump(mode="json"),
                "fault_settings": self._faults.model_dump(mode="json"),
            }
        span = arrivals[-1] - arrivals[0] if len(arrivals) >= 2 else 0.0
        snapshot["achieved_calls_per_second"] = (len(arrivals) - 1) / span if span > 0 else None
        snapshot["max_accepted_in_any_window"] = max_in_window(arrivals, _RATE_WINDOW_SECONDS)
        return snapshot

    def reset_counters(self) -> None:
        """Forget every call: counters, recorded arrivals, the rate window and the quota use.

        People, settings and faults stay; the fault generator is re-seeded.
        """
        with self._lock:
            self._usage = _Usage(self._max_recorded)
            self._random = random.Random(self._faults.seed)


def _iso_day(day: int | None) -> str | None:
    if day is None:
        return None
    return datetime.fromtimestamp(day * _SECONDS_PER_DAY, UTC).date().isoformat()


class _DroppedResponse(Response):
    """Starts a 200 that declares more body than it sends, then ends the exchange.

    Uvicorn closes the connection when an application returns with its response incomplete, so
    the client sees a transport error (``httpx.RemoteProtocolError``). Uvicorn also logs that as
    an error; the flag set here lets :class:`_DeliberateDropFilter` silence only this request's
    record, since the log call runs in the same task context after the application returns.
    """

    def __init__(self) -> None:
        super().__init__(status_code=200)

    @override
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        _DELIBERATE_DROP.set(True)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(_DROPPED_DECLARED_LENGTH).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": _DROPPED_BODY_PREFIX, "more_body": True})


class _DeliberateDropFilter(logging.Filter):
    """Drops uvicorn's "incomplete response" error for responses cut short on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_DELIBERATE_DROP.get() and record.getMessage().startswith(_INCOMPLETE_LOG))


_DROP_FILTER = _DeliberateDropFilter()


def _mashery_403(code: str, title: str) -> Response:
    headers = {"X-Mashery-Error-Code": code}
    if code == "ERR_403_DEVELOPER_OVER_QPS":
        headers["Retry-After"] = "1"
    return Response(f"<h1>{title}</h1>", status_code=403, media_type="text/xml", headers=headers)


def _service_busy() -> Response:
    return Response("Service too busy", status_code=503, media_type="text/plain")


def _refusal(verdict: _Verdict) -> Response:
    if verdict is _Verdict.BAD_KEY:
        return JSONResponse(_BAD_KEY_BODY, status_code=403)
    if verdict in (_Verdict.OVER_QPS, _Verdict.FORCED_OVER_QPS):
        return _mashery_403("ERR_403_DEVELOPER_OVER_QPS", "Developer Over Qps")
    if verdict is _Verdict.OVER_RATE:
        return _mashery_403("ERR_403_DEVELOPER_OVER_RATE", "Developer Over Rate")
    if verdict is _Verdict.DROPPED:
        return _DroppedResponse()
    return _service_busy()


def _unknown(style: UnknownStyle) -> Response:
    if style is UnknownStyle.NOT_FOUND:
        return JSONResponse({"error": 404, "description": "Resource not found"}, status_code=404)
    if style is UnknownStyle.STATUS_596:
        return Response(status_code=596)
    if style is UnknownStyle.EMPTY_200:
        return JSONResponse({})
    return JSONResponse({"error": "No users"})


def _bucket(score: float) -> str:
    if score >= 90:
        return "90-100"
    tens = int(score // 10)
    return "1-9" if tens == 0 else f"{tens * 10}-{tens * 10 + 9}"


def _deltas(person: KloutPerson) -> dict[str, float]:
    return {
        "dayChange": person.day_change,
        "weekChange": person.week_change,
        "monthChange": person.month_change,
    }


class _KloutEndpoints:
    """The request handlers; plain ``def`` so Starlette runs them in its threadpool."""

    def __init__(self, state: KloutState) -> None:
        self._state = state

    def _judge(
        self, request: Request, endpoint: KloutEndpoint, subjects: Sequence[str]
    ) -> Response | None:
        admission = self._state.admit(
            key=request.query_params.get("key"), endpoint=endpoint, screen_names=subjects
        )
        if admission.verdict is not _Verdict.ACCEPTED:
            return _refusal(admission.verdict)
        if admission.delay_seconds > 0:
            time.sleep(admission.delay_seconds)
        return None

    def _answer(
        self,
        request: Request,
        endpoint: KloutEndpoint,
        person: KloutPerson | None,
        asked: str,
        body: Callable[[KloutPerson, float], dict[str, Any]],
    ) -> Response:
        subject = person.screen_name if person is not None else asked
        refused = self._judge(request, endpoint, [subject])
        if refused is not None:
            return refused
        if person is None or person.score is None or person.opted_out:
            return _unknown(self._state.settings.unknown_style)
        return JSONResponse(body(person, person.score))

    def identity_by_screen_name(self, request: Request) -> Response:
        asked = request.query_params.get("screenName", "")
        return self._answer(
            request,
            KloutEndpoint.IDENTITY_TWITTER,
            self._state.person_by_screen_name(asked),
            asked,
            lambda person, _score: {"id": person.klout_id, "network": "ks"},
        )

    def identity_by_twitter_id(self, request: Request) -> Response:
        asked = request.path_params["twitter_id"]
        return self._answer(
            request,
            KloutEndpoint.IDENTITY_TW,
            self._state.person_by_twitter_id(asked),
            asked,
            lambda person, _score: {"id": person.klout_id, "network": "ks"},
        )

    def twitter_id_of_klout_id(self, request: Request) -> Response:
        asked = request.path_params["klout_id"]
        return self._answer(
            request,
            KloutEndpoint.IDENTITY_KLOUT_TW,
            self._state.person_by_klout_id(asked),
            asked,
            lambda person, _score: {"id": person.twitter_id, "network": "tw"},
        )

    def user(self, request: Request) -> Response:
        asked = request.path_params["klout_id"]
        return self._answer(
            request,
            KloutEndpoint.USER,
            self._state.person_by_klout_id(asked),
            asked,
            _user_body,
        )

    def score(self, request: Request) -> Response:
        asked = request.path_params["klout_id"]
        return self._answer(
            request,
            KloutEndpoint.USER_SCORE,
            self._state.person_by_klout_id(asked),
            asked,
            _score_body,
        )

    def v1_klout(self, request: Request) -> Response:
        asked = [name for name in request.query_params.get("users", "").split(",") if name]
        refused = self._judge(request, KloutEndpoint.V1_KLOUT, asked)
        if refused is not None:
            return refused
        users = []
        for name in asked:
            person = self._state.person_by_screen_name(name)
            if person is not None and person.score is not None and not person.opted_out:
                users.append({"twitter_screen_name": person.screen_name, "kscore": person.score})
        if not users:
            return JSONResponse(_NO_USERS_V1_BODY)
        return JSONResponse({"status": 200, "users": users})

    async def admin_stats(self, _request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(self._state.stats))

    async def admin_faults(self, request: Request) -> Response:
        try:
            faults = KloutFaults.model_validate_json(await request.body() or b"{}")
        except ValidationError as exc:
            return JSONResponse({"errors": exc.errors(include_url=False)}, status_code=422)
        await run_in_threadpool(self._state.set_faults, faults)
        return JSONResponse(faults.model_dump(mode="json"))

    async def admin_settings(self, request: Request) -> Response:
        try:
            settings = KloutSettings.model_validate_json(await request.body() or b"{}")
        except ValidationError as exc:
            return JSONResponse({"errors": exc.errors(include_url=False)}, status_code=422)
        await run_in_threadpool(self._state.configure, settings)
        return JSONResponse(settings.model_dump(mode="json"))

    async def admin_reset(self, _request: Request) -> Response:
        await run_in_threadpool(self._state.reset_counters)
        return JSONResponse({"reset": True})


def _user_body(person: KloutPerson, score: float) -> dict[str, Any]:
    return {
        "kloutId": person.klout_id,
        "nick": person.screen_name,
        "score": {"score": score, "bucket": _bucket(score)},
        "scoreDeltas": _deltas(person),
    }


def _score_body(person: KloutPerson, score: float) -> dict[str, Any]:
    return {"score": score, "scoreDelta": _deltas(person), "bucket": _bucket(score)}


def create_klout_app(state: KloutState) -> Starlette:
    """An ASGI app serving the Klout v2 (and v1 ``klout.json``) API over ``state``.

    API routes need ``?key=``; the admin routes ``GET /_emulator/stats``,
    ``POST /_emulator/faults`` (a :class:`KloutFaults` JSON body; fields left out take their
    defaults, so ``{}`` clears every fault), ``POST /_emulator/settings`` (a :class:`KloutSettings`
    body) and ``POST /_emulator/reset`` need none. Invalid admin bodies answer 422.
    """
    logging.getLogger("uvicorn.error").addFilter(_DROP_FILTER)
    handlers = _KloutEndpoints(state)
    return Starlette(
        routes=[
            Route("/v2/identity.json/twitter", handlers.identity_by_screen_name),
            Route("/v2/identity.json/tw/{twitter_id}", handlers.identity_by_twitter_id),
            Route("/v2/identity.json/klout/{klout_id}/tw", handlers.twitter_id_of_klout_id),
            Route("/v2/user.json/{klout_id}", handlers.user),
            Route("/v2/user.json/{klout_id}/score", handlers.score),
            Route("/1/klout.json", handlers.v1_klout),
            Route("/_emulator/stats", handlers.admin_stats),
            Route("/_emulator/faults", handlers.admin_faults, methods=["POST"]),
            Route("/_emulator/settings", handlers.admin_settings, methods=["POST"]),
            Route("/_emulator/reset", handlers.admin_reset, methods=["POST"]),
        ]
    )
