"""A wire-level emulator of the Twitter-API-v2-style users-by-username endpoint.

scoregate uses it as an existence check: it tells a handle that does not exist (``not_found``)
from one that exists but has no score (``unscored``). Shapes follow ``reference/upstream-apis.md``
section 6:

- ``GET /2/users/by/username/{username}`` with ``Authorization: Bearer <token>``;
- an existing user: 200 ``{"data": {"id", "name", "username"}}`` (lookup is case-insensitive, the
  answer carries the stored spelling);
- a missing user: **200** with an ``errors`` entry titled "Not Found Error";
- a suspended user: 200 with an ``errors`` entry titled "Forbidden" (its ``type`` is the same
  resource-not-found URI, so a client must read the title, not the type; the exact ``type`` of
  the real API is unconfirmed);
- a malformed username (not ``^[A-Za-z0-9_]{1,15}$``): 400 with ``errors[].message``;
- a missing or wrong token: 401;
- an optional fixed-window rate limit: over it, 429 with ``x-rate-limit-reset`` (epoch seconds).

A call is judged in that order: token, then rate limit, then the username. Only authorised calls
use the rate window. ``GET /_emulator/stats`` and ``POST /_emulator/reset`` need no token.
"""

from __future__ import annotations

import hmac
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = [
    "TwitterOutcome",
    "TwitterState",
    "TwitterUser",
    "create_twitter_app",
]

_USERNAME = re.compile(r"^[A-Za-z0-9_]{1,15}$")
_NOT_FOUND_TYPE = "https://api.twitter.com/2/problems/resource-not-found"
_INVALID_TYPE = "https://api.twitter.com/2/problems/invalid-request"
_UNAUTHORIZED_BODY = {
    "title": "Unauthorized",
    "type": "about:blank",
    "status": 401,
    "detail": "Unauthorized",
}
_TOO_MANY_BODY = {
    "title": "Too Many Requests",
    "type": "about:blank",
    "status": 429,
    "detail": "Too Many Requests",
}


class TwitterOutcome(StrEnum):
    """How a call was answered; the keys of ``stats()["outcomes"]``."""

    FOUND = "found"
    NOT_FOUND = "not_found"
    SUSPENDED = "suspended"
    INVALID = "invalid"
    UNAUTHORIZED = "unauthorized"
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True, slots=True)
class TwitterUser:
    """One account. ``id`` is a string, as the API sends it."""

    username: str
    id: str
    name: str
    suspended: bool = False


@dataclass(slots=True)
class _Usage:
    """Counters and the rate window; replaced whole on reset."""

    calls_total: int = 0
    outcomes: Counter[TwitterOutcome] = field(default_factory=Counter)
    by_username: Counter[str] = field(default_factory=Counter)
    #: start of the current fixed window (``None`` before the first authorised call)
    window_start: float | None = None
    window_calls: int = 0


@dataclass(frozen=True, slots=True)
class _RateVerdict:
    allowed: bool
    #: headers every authorised answer carries while a limit is configured
    headers: dict[str, str]


class TwitterState:
    """Accounts, the bearer token, the optional rate limit and the counters; thread-safe.

    ``rate_limit=None`` disables limiting; otherwise at most ``rate_limit`` authorised calls are
    answered per fixed window of ``rate_window_seconds`` that starts with the first call after the
    previous window ended (as Twitter's 15-minute windows do). ``clock`` returns epoch seconds.
    """

    def __init__(
        self,
        users: Iterable[TwitterUser] = (),
        *,
        bearer_token: str,
        rate_limit: int | None = None,
        rate_window_seconds: float = 900.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.Lock()
        self._bearer_token = bearer_token
        self._rate_limit = rate_limit
        self._rate_window_seconds = rate_window_seconds
        self._clock = clock
        self._users: dict[str, TwitterUser] = {}
        self._usage = _Usage()
        for user in users:
            self.add_user(user)

    @property
    def bearer_token(self) -> str:
        """The one token this emulator accepts."""
        return self._bearer_token

    def add_user(self, user: TwitterUser) -> None:
        """Add ``user``, replacing any account with the same username (case-insensitive)."""
        with self._lock:
            self._users[user.username.lower()] = user

    def set_rate_limit(self, rate_limit: int | None, window_seconds: float = 900.0) -> None:
        """Change the limit; the current window restarts with the next call."""
        with self._lock:
            self._rate_limit = rate_limit
            self._rate_window_seconds = window_seconds
            self._usage.window_start = None
            self._usage.window_calls = 0

    def authorised(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header carries the bearer token."""
        expected = f"Bearer {self._bearer_token}".encode()
        return authorization is not None and hmac.compare_digest(authorization.encode(), expected)

    def take_rate_slot(self) -> _RateVerdict:
        """Use one slot of the current window if there is one; say so, with the limit headers."""
        with self._lock:
            if self._rate_limit is None:
                return _RateVerdict(allowed=True, headers={})
            usage = self._usage
            now = self._clock()
            start = usage.window_start
            if start is None or now >= start + self._rate_window_seconds:
                start = usage.window_start = now
                usage.window_calls = 0
            allowed = usage.window_calls < self._rate_limit
            if allowed:
                usage.window_calls += 1
            reset = math.ceil(start + self._rate_window_seconds)
            headers = {
                "x-rate-limit-limit": str(self._rate_limit),
                "x-rate-limit-remaining": str(self._rate_limit - usage.window_calls),
                "x-rate-limit-reset": str(reset),
            }
            return _RateVerdict(allowed=allowed, headers=headers)

    def user(self, username: str) -> TwitterUser | None:
        """The account with this username (case-insensitive), suspended or not."""
        with self._lock:
            return self._users.get(username.lower())

    def count(self, outcome: TwitterOutcome, username: str) -> None:
        """Count one call and how it was answered."""
        with self._lock:
            self._usage.calls_total += 1
            self._usage.outcomes[outcome] += 1
            self._usage.by_username[username.lower()] += 1

    def stats(self) -> dict[str, Any]:
        """A JSON-ready snapshot: ``calls_total``, ``outcomes`` by kind, ``by_username``."""
        with self._lock:
            usage = self._usage
            return {
                "calls_total": usage.calls_total,
                "outcomes": {outcome.value: usage.outcomes[outcome] for outcome in TwitterOutcome},
                "by_username": dict(usage.by_username),
                "rate_limit": self._rate_limit,
                "rate_window_seconds": self._rate_window_seconds,
            }

    def reset_counters(self) -> None:
        """Forget every call, the rate window included; accounts and settings stay."""
        with self._lock:
            self._usage = _Usage()


def _resource_error(username: str, *, title: str, detail: str, kind: str) -> dict[str, Any]:
    return {
        "errors": [
            {
                "value": username,
                "detail": detail,
                "title": title,
                "resource_type": "user",
                "parameter": "username",
                "resource_id": username,
                "type": kind,
            }
        ]
    }


def _invalid_username(username: str) -> dict[str, Any]:
    return {
        "errors": [
            {
                "parameters": {"username": [username]},
                "message": (
                    f"The `username` query parameter value [{username}] does not match "
                    "^[A-Za-z0-9_]{1,15}$"
                ),
            }
        ],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": _INVALID_TYPE,
    }


class _TwitterEndpoints:
    """The request handlers; plain ``def`` so Starlette runs them in its threadpool."""

    def __init__(self, state: TwitterState) -> None:
        self._state = state

    def user_by_username(self, request: Request) -> Response:
        username: str = request.path_params["username"]
        state = self._state
        if not state.authorised(request.headers.get("authorization")):
            state.count(TwitterOutcome.UNAUTHORIZED, username)
            return JSONResponse(_UNAUTHORIZED_BODY, status_code=401)
        rate = state.take_rate_slot()
        if not rate.allowed:
            state.count(TwitterOutcome.RATE_LIMITED, username)
            return JSONResponse(_TOO_MANY_BODY, status_code=429, headers=rate.headers)
        if _USERNAME.fullmatch(username) is None:
            state.count(TwitterOutcome.INVALID, username)
            return JSONResponse(_invalid_username(username), status_code=400, headers=rate.headers)
        user = state.user(username)
        if user is None:
            state.count(TwitterOutcome.NOT_FOUND, username)
            body = _resource_error(
                username,
                title="Not Found Error",
                detail=f"Could not find user with username: [{username}].",
                kind=_NOT_FOUND_TYPE,
            )
        elif user.suspended:
            state.count(TwitterOutcome.SUSPENDED, username)
            body = _resource_error(
                username,
                title="Forbidden",
                detail=f"User has been suspended: [{username}].",
                kind=_NOT_FOUND_TYPE,
            )
        else:
            state.count(TwitterOutcome.FOUND, username)
            body = {"data": {"id": user.id, "name": user.name, "username": user.username}}
        return JSONResponse(body, headers=rate.headers)

    async def admin_stats(self, _request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(self._state.stats))

    async def admin_reset(self, _request: Request) -> Response:
        await run_in_threadpool(self._state.reset_counters)
        return JSONResponse({"reset": True})


def create_twitter_app(state: TwitterState) -> Starlette:
    """An ASGI app serving ``GET /2/users/by/username/{username}`` over ``state``.

    Admin routes: ``GET /_emulator/stats`` and ``POST /_emulator/reset`` (no token needed).
    """
    handlers = _TwitterEndpoints(state)
    return Starlette(
        routes=[
            Route("/2/users/by/username/{username}", handlers.user_by_username),
            Route("/_emulator/stats", handlers.admin_stats),
            Route("/_emulator/reset", handlers.admin_reset, methods=["POST"]),
        ]
    )
