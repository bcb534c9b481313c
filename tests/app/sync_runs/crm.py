"""The three CRM emulators on loopback, and service settings that connect to them.

Shared by the sync-run, webhook and propagation tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from app.config import Settings
from emulators.mailchimp import MailchimpState, MergeFieldType, create_mailchimp_app
from emulators.salesforce import DEFAULT_SESSION_ID, SalesforceState, create_salesforce_app
from emulators.sandbox import SANDBOX_PEOPLE, Sandbox, SandboxPerson
from emulators.server import LoopbackServer
from emulators.zoho import ZohoState, create_zoho_app
from tests.conftest import make_settings

MAILCHIMP_KEY = "test-key-us1"
LIST_ID = "L1"
WEBHOOK_TOKEN = "mailchimp-hook-token-0123456789"
BATCH = 5


@dataclass
class Crms:
    salesforce: SalesforceState
    zoho: ZohoState
    mailchimp: MailchimpState
    salesforce_url: str
    zoho_url: str
    mailchimp_url: str


def mailchimp_state() -> MailchimpState:
    state = MailchimpState(MAILCHIMP_KEY)
    state.add_list(LIST_ID)
    for tag in ("SCORE", "FAIRSCORE"):
        state.add_merge_field(LIST_ID, tag, MergeFieldType.NUMBER)
    for tag in ("SCORESTAT", "SCORESEG", "NOSCORE", "TWITTER"):
        state.add_merge_field(LIST_ID, tag, MergeFieldType.TEXT)
    return state


@contextmanager
def running_crms(
    *, salesforce_app: Any = None, zoho_app: Any = None, mailchimp_app: Any = None
) -> Iterator[Crms]:
    """Fresh emulators; an ``*_app`` wraps the emulator's ASGI app (fault injection)."""
    salesforce, zoho, mailchimp = SalesforceState(), ZohoState(), mailchimp_state()
    with ExitStack() as stack:
        servers = [
            stack.enter_context(LoopbackServer((wrap or (lambda app: app))(app)))
            for wrap, app in (
                (salesforce_app, create_salesforce_app(salesforce)),
                (zoho_app, create_zoho_app(zoho)),
                (mailchimp_app, create_mailchimp_app(mailchimp)),
            )
        ]
        yield Crms(salesforce, zoho, mailchimp, *(server.url for server in servers))


def connector_configs(crms: Crms) -> dict[str, dict[str, Any]]:
    return {
        "salesforce": {
            "kind": "salesforce",
            "instance_url": crms.salesforce_url,
            "session_id": DEFAULT_SESSION_ID,
            "bulk_poll_seconds": 0,
            "max_batch": BATCH,
        },
        "zoho": {
            "kind": "zoho",
            "client_id": "zoho-client-id",
            "client_secret": "zoho-client-secret",
            "refresh_token": "1000.zoho-refresh-token",
            "accounts_url": crms.zoho_url,
            "batch_size": BATCH,
            "backoff_initial": "PT0.01S",
            "backoff_max": "PT0.05S",
        },
        "mailchimp": {
            "kind": "mailchimp",
            "api_key": MAILCHIMP_KEY,
            "list_id": LIST_ID,
            "base_url": f"{crms.mailchimp_url}/3.0",
            "batch_size": BATCH,
            "fields": {"identities": {"email": "email_address", "twitter": "TWITTER"}},
        },
    }


def crm_settings(
    database_url: str, sandbox: Sandbox, crms: Crms, *, workers: bool = False, **overrides: Any
) -> Settings:
    """Test settings with the three connectors; background workers off unless asked for, and
    then polling fast."""
    values: dict[str, Any] = {
        "connectors": connector_configs(crms),
        "sync": {"worker": workers, "poll_interval": "PT0.05S", "resolve_deadline": "PT30S"},
        "propagation": {
            "worker": workers,
            "poll_interval": "PT0.05S",
            "backoff_initial": "PT0.05S",
            "backoff_max": "PT0.2S",
        },
        "mailchimp_webhook": {
            "token": WEBHOOK_TOKEN,
            "worker": workers,
            "poll_interval": "PT0.05S",
            "backoff_initial": "PT0.05S",
            "backoff_max": "PT0.2S",
        },
    }
    values.update(overrides)
    return make_settings(database_url, sandbox, **values)


def person(handle: str) -> SandboxPerson:
    return next(p for p in SANDBOX_PEOPLE if p.handle == handle)


#: sandbox people with one of each status, as CRM contacts see them
MIX = ("carla_dev", "ann_marketing", "quiet_quinn", "nobody_here_42", "olga_optout", "bob_support")
