"""Sample people covering every scoregate status, and a one-call start of the score-API emulators.

The sandbox is what a new user meets first: a Klout-v2 emulator and a Twitter-style existence
check on loopback, populated so that each of the five statuses (``scored``, ``opted_out``,
``unscored``, ``not_found``, ``unavailable``) shows up. The seven scored people have the median
score 54.0, so a ``neutral`` policy visibly places the non-scored at 54.

The credentials below are fixed sandbox constants, not secrets: the emulators accept nothing else
and listen on 127.0.0.1 only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType

from emulators.klout import KloutFaults, KloutPerson, KloutSettings, KloutState, create_klout_app
from emulators.server import LoopbackServer
from emulators.twitter import TwitterState, TwitterUser, create_twitter_app

__all__ = [
    "SANDBOX_KLOUT_API_KEY",
    "SANDBOX_PEOPLE",
    "SANDBOX_TWITTER_BEARER_TOKEN",
    "Sandbox",
    "SandboxPerson",
    "SandboxStatus",
    "sandbox_klout_state",
    "sandbox_twitter_state",
    "start_sandbox",
]

SANDBOX_KLOUT_API_KEY = "sandbox-klout-key"
SANDBOX_TWITTER_BEARER_TOKEN = "sandbox-twitter-token"


class SandboxStatus(StrEnum):
    """The status scoregate should give a sample person; the same five words as scoregate's own.

    Kept here because emulators import no scoregate package; being a ``StrEnum`` it compares equal
    to the plain strings and to scoregate's status enum.
    """

    SCORED = "scored"
    OPTED_OUT = "opted_out"
    UNSCORED = "unscored"
    NOT_FOUND = "not_found"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxPerson:
    """One sample person and how each emulator treats them.

    - ``klout_id`` is ``None`` when Klout has never heard of the handle; ``klout_score`` is
      ``None`` when Klout knows the handle but has no score; ``klout_opted_out`` marks a person who
      opted out at Klout itself (Klout then answers as for a stranger).
    - ``always_busy`` makes Klout answer every call about the person with 503 "Service too busy".
    - ``opted_out_in_registry`` marks who scoregate must put in its own opt-out registry when the
      sandbox starts: such a person is never to be fetched, although Klout would score them.
    """

    handle: str
    klout_score: float | None
    on_twitter: bool
    suspended: bool
    expected_status: SandboxStatus
    description: str
    opted_out_in_registry: bool = False
    email: str | None = None
    klout_id: str | None = None
    twitter_id: str | None = None
    display_name: str = ""
    klout_opted_out: bool = False
    always_busy: bool = False


def _scored(
    handle: str, score: float, klout_id: str, twitter_id: str, name: str, email: str | None
) -> SandboxPerson:
    return SandboxPerson(
        handle=handle,
        klout_score=score,
        on_twitter=True,
        suspended=False,
        expected_status=SandboxStatus.SCORED,
        description=f"Klout scores {name} at {score}; shown as a plain scored contact.",
        email=email,
        klout_id=klout_id,
        twitter_id=twitter_id,
        display_name=name,
    )


SANDBOX_PEOPLE: tuple[SandboxPerson, ...] = (
    _scored("jtimberlake", 92.8, "635263", "26565946", "Justin Timberlake", None),
    _scored(
        "femi_founder", 86.4, "54887627490056592", "1188345023", "Femi Founder", "femi@example.com"
    ),
    _scored("carla_dev", 73.2, "391122", "80313377", "Carla Dev", "carla@example.com"),
    _scored("ann_marketing", 54.0, "771204", "45170011", "Ann Marketing", "ann@example.com"),
    _scored("bob_support", 41.5, "118472", "61290004", "Bob Support", "bob@example.org"),
    _scored(
        "gus_gardener", 33.3, "903718245561022817", "1401120734", "Gus Gardener", "gus@example.net"
    ),
    _scored("dmitri_ops", 21.7, "250981", "92837465", "Dmitri Ops", "dmitri@example.com"),
    SandboxPerson(
        handle="quiet_quinn",
        klout_score=None,
        on_twitter=True,
        suspended=False,
        expected_status=SandboxStatus.UNSCORED,
        description="On Twitter but too quiet for a score: Klout says 'No users'; never 'low'.",
        email="quinn@example.com",
        klout_id="640017",
        twitter_id="70112233",
        display_name="Quiet Quinn",
    ),
    SandboxPerson(
        handle="private_pat",
        klout_score=62.0,
        on_twitter=True,
        suspended=False,
        expected_status=SandboxStatus.UNSCORED,
        description=(
            "Opted out at Klout itself: Klout answers exactly as for a stranger, so scoregate "
            "can only say unscored."
        ),
        email="pat@example.org",
        klout_id="712345",
        twitter_id="55500121",
        display_name="Private Pat",
        klout_opted_out=True,
    ),
    SandboxPerson(
        handle="nobody_here_42",
        klout_score=None,
        on_twitter=False,
        suspended=False,
        expected_status=SandboxStatus.NOT_FOUND,
        description="A handle that exists nowhere: a CRM data-quality problem, not a judgement.",
        email="nobody42@example.com",
    ),
    SandboxPerson(
        handle="olga_optout",
        klout_score=67.3,
        on_twitter=True,
        suspended=False,
        expected_status=SandboxStatus.OPTED_OUT,
        description=(
            "Asked scoregate not to be scored: in the registry from the start, never fetched, "
            "although Klout would answer with a score."
        ),
        opted_out_in_registry=True,
        email="olga@example.com",
        klout_id="498877",
        twitter_id="33221100",
        display_name="Olga Optout",
    ),
    SandboxPerson(
        handle="busy_bea",
        klout_score=58.0,
        on_twitter=True,
        suspended=False,
        expected_status=SandboxStatus.UNAVAILABLE,
        description="Klout always answers 503 'Service too busy' for her: transient, never cached.",
        email="bea@example.com",
        klout_id="520991",
        twitter_id="44017788",
        display_name="Busy Bea",
        always_busy=True,
    ),
    SandboxPerson(
        handle="suspended_sam",
        klout_score=None,
        on_twitter=True,
        suspended=True,
        expected_status=SandboxStatus.UNSCORED,
        description="Suspended on Twitter (the handle exists) and unknown to Klout: unscored.",
        email="sam@example.org",
        twitter_id="66600066",
        display_name="Suspended Sam",
    ),
)


def sandbox_klout_state(
    people: Iterable[SandboxPerson] = SANDBOX_PEOPLE,
    *,
    rate_per_second: int = 10,
    daily_quota: int = 10_000,
) -> KloutState:
    """A Klout emulator state holding every person Klout knows, busy ones made always-busy."""
    people = tuple(people)
    klout_people = [
        KloutPerson(
            screen_name=person.handle,
            klout_id=person.klout_id,
            twitter_id=person.twitter_id or "",
            score=person.klout_score,
            opted_out=person.klout_opted_out,
        )
        for person in people
        if person.klout_id is not None
    ]
    busy = frozenset(person.handle for person in people if person.always_busy)
    return KloutState(
        klout_people,
        api_key=SANDBOX_KLOUT_API_KEY,
        settings=KloutSettings(rate_per_second=rate_per_second, daily_quota=daily_quota),
        faults=KloutFaults(unavailable_screen_names=busy),
    )


def sandbox_twitter_state(people: Iterable[SandboxPerson] = SANDBOX_PEOPLE) -> TwitterState:
    """A Twitter emulator state holding every person who is on Twitter (suspended or not)."""
    users = [
        TwitterUser(
            username=person.handle,
            id=person.twitter_id or "",
            name=person.display_name or person.handle,
            suspended=person.suspended,
        )
        for person in people
        if person.on_twitter
    ]
    return TwitterState(users, bearer_token=SANDBOX_TWITTER_BEARER_TOKEN)


class Sandbox:
    """Both emulators running on loopback; stop with :meth:`stop` or use as a context manager."""

    def __init__(
        self,
        *,
        klout_server: LoopbackServer,
        twitter_server: LoopbackServer,
        klout_state: KloutState,
        twitter_state: TwitterState,
        people: tuple[SandboxPerson, ...],
    ) -> None:
        self._klout_server = klout_server
        self._twitter_server = twitter_server
        self.klout_state = klout_state
        self.twitter_state = twitter_state
        self.people = people
        self.klout_url = klout_server.url
        self.twitter_url = twitter_server.url
        self.klout_api_key = SANDBOX_KLOUT_API_KEY
        self.twitter_bearer_token = SANDBOX_TWITTER_BEARER_TOKEN

    @property
    def registry_opt_outs(self) -> tuple[SandboxPerson, ...]:
        """The people scoregate must record as opted out before its first lookup."""
        return tuple(person for person in self.people if person.opted_out_in_registry)

    def stop(self) -> None:
        """Stop both servers (each waits for its in-flight calls)."""
        self._klout_server.stop()
        self._twitter_server.stop()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_sandbox(
    *,
    klout_port: int = 0,
    twitter_port: int = 0,
    rate_per_second: int = 10,
    daily_quota: int = 10_000,
) -> Sandbox:
    """Start the Klout and Twitter emulators with :data:`SANDBOX_PEOPLE` on 127.0.0.1.

    Port 0 picks a free port. If the second server cannot start, the first is stopped before the
    error propagates, so a failed start leaves nothing running.
    """
    klout_state = sandbox_klout_state(rate_per_second=rate_per_second, daily_quota=daily_quota)
    twitter_state = sandbox_twitter_state()
    klout_server = LoopbackServer(create_klout_app(klout_state), port=klout_port).start()
    try:
        twitter_server = LoopbackServer(create_twitter_app(twitter_state), port=twitter_port)
        twitter_server.start()
    except BaseException:
        klout_server.stop()
        raise
    return Sandbox(
        klout_server=klout_server,
        twitter_server=twitter_server,
        klout_state=klout_state,
        twitter_state=twitter_state,
        people=SANDBOX_PEOPLE,
    )
