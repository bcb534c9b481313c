"""The Salesforce emulator, driven over loopback HTTP by the real simple-salesforce client."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from requests.adapters import HTTPAdapter
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceOperationError,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from emulators.salesforce import (
    DEFAULT_SESSION_ID,
    Endpoint,
    Fault,
    SalesforceState,
    create_salesforce_app,
    salesforce_id,
)
from emulators.server import LoopbackServer

SCORE = "Influence_Score__c"


class _PlainHttp(HTTPAdapter):
    """Sends the library's https:// URLs to the plain-http loopback emulator."""

    def send(self, request, *args, **kwargs):
        request.url = request.url.replace("https://", "http://", 1)
        return super().send(request, *args, **kwargs)


@pytest.fixture
def state() -> SalesforceState:
    return SalesforceState()


@pytest.fixture
def server(state: SalesforceState) -> Iterator[LoopbackServer]:
    with LoopbackServer(create_salesforce_app(state)) as running:
        yield running


def _client(server: LoopbackServer, session_id: str = DEFAULT_SESSION_ID) -> Salesforce:
    session = requests.Session()
    session.mount("https://", _PlainHttp())
    return Salesforce(instance_url=server.url, session_id=session_id, session=session)


@pytest.fixture
def sf(server: LoopbackServer) -> Iterator[Salesforce]:
    client = _client(server)
    yield client
    client.session.close()


def _body(error: SalesforceError) -> object:
    """The parsed error body (the library types ``content`` as bytes; it holds the JSON)."""
    content: object = error.content
    return content


def _first_error(error: SalesforceError) -> dict[str, object]:
    body = _body(error)
    assert isinstance(body, list)
    assert isinstance(body[0], dict)
    return body[0]


def _contacts(state: SalesforceState, count: int) -> list[str]:
    return state.seed(
        "Contact",
        ({"Email": f"p{i}@example.com", "Twitter_Handle__c": f"handle{i}"} for i in range(count)),
    )


class TestSalesforceId:
    def test_ids_are_18_chars_with_prefix_and_sort_in_creation_order(self):
        ids = [salesforce_id("003", number) for number in (1, 61, 62, 5000)]
        assert all(len(record_id) == 18 and record_id.startswith("003") for record_id in ids)
        assert ids == sorted(ids)

    def test_checksum_marks_upper_case_positions(self):
        # 35 is "Z": the 15-char id's last character, position 4 of the third 5-char chunk
        assert salesforce_id("003", 35) == "00300000000000ZAAQ"


class TestSeed:
    def test_seeds_100k_records_that_page_in_id_order(self, state, sf):
        ids = _contacts(state, 100_000)
        answer = sf.query("SELECT Id FROM Contact ORDER BY SystemModstamp, Id")
        assert state.count("Contact") == 100_000
        assert answer["totalSize"] == 100_000
        assert [record["Id"] for record in answer["records"]] == ids[:2000]

    def test_seeding_makes_no_api_call(self, state, server):
        _contacts(state, 10)
        assert state.total_calls == 0
        assert state.api_used == 0


class TestQuery:
    def test_pages_of_2000_chained_by_next_records_url_paths(self, state, sf):
        ids = _contacts(state, 4500)
        first = sf.query("SELECT Id, Email FROM Contact ORDER BY SystemModstamp, Id")
        assert (first["totalSize"], first["done"], len(first["records"])) == (4500, False, 2000)
        assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/")
        everything = sf.query_all("SELECT Id, Email FROM Contact ORDER BY SystemModstamp, Id")
        assert [record["Id"] for record in everything["records"]] == ids
        assert everything["records"][4499]["Email"] == "p4499@example.com"
        assert everything["records"][0]["attributes"]["type"] == "Contact"

    def test_where_system_modstamp_selects_later_records(self, state, sf):
        old = datetime(2026, 1, 1, tzinfo=UTC)
        state.seed("Contact", [{"Email": "old@example.com"}], modstamp=old)
        new_id = state.add_record(
            "Contact", {"Email": "new@example.com"}, modstamp=old + timedelta(days=1)
        )
        answer = sf.query(
            "SELECT Id, SystemModstamp FROM Contact WHERE SystemModstamp > 2026-01-01T00:00:00Z "
            "ORDER BY SystemModstamp, Id"
        )
        assert [record["Id"] for record in answer["records"]] == [new_id]
        assert answer["records"][0]["SystemModstamp"] == "2026-01-02T00:00:00.000+0000"

    def test_where_string_and_boolean_conditions_and_limit(self, state, sf):
        state.seed(
            "Lead",
            [
                {"Email": "a@example.com", "Do_Not_Score__c": True},
                {"Email": "b@example.com", "Do_Not_Score__c": True},
                {"Email": "c@example.com", "Do_Not_Score__c": False},
            ],
        )
        answer = sf.query(
            "SELECT Email FROM Lead WHERE Do_Not_Score__c = true AND Email != 'a@example.com' "
            "ORDER BY Email DESC LIMIT 5"
        )
        assert [record["Email"] for record in answer["records"]] == ["b@example.com"]

    def test_order_by_desc(self, state, sf):
        ids = _contacts(state, 3)
        answer = sf.query("SELECT Id FROM Contact ORDER BY Id DESC")
        assert [record["Id"] for record in answer["records"]] == ids[::-1]

    def test_relationship_field_follows_individual_id(self, state, sf):
        individual = state.add_record("Individual", {"HasOptedOutProfiling": True})
        linked = state.add_record("Contact", {"IndividualId": individual})
        state.add_record("Contact", {"Email": "unlinked@example.com"})
        answer = sf.query(
            "SELECT Id, Individual.HasOptedOutProfiling FROM Contact ORDER BY SystemModstamp, Id"
        )
        first, second = answer["records"]
        assert first["Id"] == linked
        assert first["Individual"]["HasOptedOutProfiling"] is True
        assert second["Individual"] is None

    def test_unknown_field_is_invalid_field(self, sf):
        with pytest.raises(SalesforceMalformedRequest) as caught:
            sf.query("SELECT Id, Nope__c FROM Contact")
        assert _first_error(caught.value)["errorCode"] == "INVALID_FIELD"

    def test_unparsable_query_is_malformed(self, sf):
        with pytest.raises(SalesforceMalformedRequest) as caught:
            sf.query("DELETE Contact")
        assert _first_error(caught.value)["errorCode"] == "MALFORMED_QUERY"

    def test_query_call_is_counted(self, state, sf):
        sf.query("SELECT Id FROM Contact")
        assert state.calls(Endpoint.QUERY) == 1


class TestQueryMore:
    def test_next_page_is_counted_per_endpoint(self, state, sf):
        _contacts(state, 2500)
        first = sf.query("SELECT Id FROM Contact")
        more = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
        assert (len(more["records"]), more["done"]) == (500, True)
        assert "nextRecordsUrl" not in more
        assert state.calls(Endpoint.QUERY_MORE) == 1

    def test_unknown_locator_is_refused(self, sf):
        with pytest.raises(SalesforceMalformedRequest) as caught:
            sf.query_more("/services/data/v59.0/query/01gnope-2000", identifier_is_url=True)
        assert _first_error(caught.value)["errorCode"] == "INVALID_QUERY_LOCATOR"


class TestCollectionsUpdate:
    def test_updates_records_and_bumps_system_modstamp(self, state, sf):
        (record_id,) = _contacts(state, 1)
        before = state.record("Contact", record_id)["SystemModstamp"]
        answer = sf.restful(
            "composite/sobjects",
            method="PATCH",
            json={
                "allOrNone": False,
                "records": [
                    {
                        "attributes": {"type": "Contact"},
                        "id": record_id,
                        SCORE: 61.5,
                        "Influence_Segment__c": "high",
                    }
                ],
            },
        )
        after = state.record("Contact", record_id)
        assert answer == [{"id": record_id, "success": True, "errors": []}]
        assert (after[SCORE], after["Influence_Segment__c"]) == (61.5, "high")
        assert after["SystemModstamp"] > before
        assert state.calls(Endpoint.COLLECTIONS_UPDATE) == 1

    def test_null_blanks_a_field(self, state, sf):
        record_id = state.add_record("Contact", {SCORE: 40.0})
        sf.restful(
            "composite/sobjects",
            method="PATCH",
            json={"records": [{"attributes": {"type": "Contact"}, "id": record_id, SCORE: None}]},
        )
        assert state.record("Contact", record_id)[SCORE] is None

    def test_per_record_errors_come_back_in_order(self, state, sf):
        good, rejected = _contacts(state, 2)
        state.reject_record(
            rejected, "FIELD_CUSTOM_VALIDATION_EXCEPTION", "validation rule", [SCORE]
        )
        missing = salesforce_id("003", 999_999)
        answer = sf.restful(
            "composite/sobjects",
            method="PATCH",
            json={
                "records": [
                    {"attributes": {"type": "Contact"}, "id": good, SCORE: 10},
                    {"attributes": {"type": "Contact"}, "id": rejected, SCORE: 10},
                    {"attributes": {"type": "Contact"}, "id": missing, SCORE: 10},
                    {"attributes": {"type": "Contact"}, "id": good, SCORE: "ten"},
                    {
                        "attributes": {"type": "Contact"},
                        "id": good,
                        "Influence_Explanation__c": "x" * 256,
                    },
                ]
            },
        )
        codes = [item["errors"][0]["statusCode"] if item["errors"] else "" for item in answer]
        assert [item["success"] for item in answer] == [True, False, False, False, False]
        assert codes == [
            "",
            "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "INVALID_CROSS_REFERENCE_KEY",
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            "STRING_TOO_LONG",
        ]
        assert answer[1]["errors"][0]["fields"] == [SCORE]

    def test_all_or_none_rolls_back_every_record(self, state, sf):
        good = state.add_record("Contact", {SCORE: 1.0})
        answer = sf.restful(
            "composite/sobjects",
            method="PATCH",
            json={
                "allOrNone": True,
                "records": [
                    {"attributes": {"type": "Contact"}, "id": good, SCORE: 2},
                    {"attributes": {"type": "Contact"}, "id": good, "Nope__c": 2},
                ],
            },
        )
        assert [item["errors"][0]["statusCode"] for item in answer] == [
            "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "INVALID_FIELD",
        ]
        assert state.record("Contact", good)[SCORE] == 1.0

    def test_more_than_200_records_is_a_400(self, state, sf):
        ids = _contacts(state, 201)
        records = [
            {"attributes": {"type": "Contact"}, "id": record_id, SCORE: 1} for record_id in ids
        ]
        with pytest.raises(SalesforceMalformedRequest) as caught:
            sf.restful("composite/sobjects", method="PATCH", json={"records": records})
        assert _first_error(caught.value)["errorCode"] == "EXCEEDED_ID_LIMIT"

    def test_mixed_objects_in_one_call(self, state, sf):
        contact = state.add_record("Contact", {})
        lead = state.add_record("Lead", {})
        answer = sf.restful(
            "composite/sobjects",
            method="PATCH",
            json={
                "records": [
                    {"attributes": {"type": "Contact"}, "id": contact, SCORE: 5},
                    {"attributes": {"type": "Lead"}, "id": lead, SCORE: 6},
                ]
            },
        )
        assert all(item["success"] for item in answer)
        assert state.record("Lead", lead)[SCORE] == 6.0


class TestCollectionsUpsert:
    def test_upsert_by_external_field_updates_or_creates(self, state, sf):
        existing = state.add_record("Contact", {"Email": "ann@example.com"})
        answer = sf.restful(
            "composite/sobjects/Contact/Email",
            method="PATCH",
            json={
                "records": [
                    {"attributes": {"type": "Contact"}, "Email": "ann@example.com", SCORE: 70},
                    {"attributes": {"type": "Contact"}, "Email": "bob@example.com", SCORE: 30},
                ]
            },
        )
        assert [(item["success"], item["created"]) for item in answer] == [
            (True, False),
            (True, True),
        ]
        assert answer[0]["id"] == existing
        assert state.record("Contact", answer[1]["id"])["Email"] == "bob@example.com"
        assert state.calls(Endpoint.COLLECTIONS_UPSERT) == 1


class TestSObject:
    def test_get_and_update_one_record(self, state, sf):
        record_id = state.add_record("Contact", {"Email": "ann@example.com"})
        status = sf.Contact.update(record_id, {SCORE: 12.5})
        record = sf.Contact.get(record_id)
        assert status == 204
        assert (record["Email"], record[SCORE]) == ("ann@example.com", 12.5)
        assert state.calls(Endpoint.SOBJECT_UPDATE) == state.calls(Endpoint.SOBJECT_GET) == 1

    def test_missing_record_is_not_found(self, sf):
        with pytest.raises(SalesforceResourceNotFound):
            sf.Contact.get(salesforce_id("003", 4242))


class TestLimits:
    def test_daily_api_requests(self, state, sf):
        state.api_limit = 5000
        answer = sf.limits()
        assert answer["DailyApiRequests"] == {"Max": 5000, "Remaining": 4999}


class TestBulkIngest:
    def test_update_job_applies_rows_and_reports_failures(self, state, sf):
        ids = _contacts(state, 3)
        state.add_record("Contact", {})
        state.reject_record(ids[2], "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access")
        results = sf.bulk2.Contact.update(
            records=[
                {"Id": record_id, SCORE: "42.5", "Influence_Status__c": "scored"}
                for record_id in ids
            ],
            wait=0,
        )
        job_id = results[0]["job_id"]
        failed = list(csv.DictReader(io.StringIO(sf.bulk2.Contact.get_failed_records(job_id))))
        succeeded = list(
            csv.DictReader(io.StringIO(sf.bulk2.Contact.get_successful_records(job_id)))
        )
        assert (results[0]["numberRecordsProcessed"], results[0]["numberRecordsFailed"]) == (3, 1)
        assert [row["sf__Id"] for row in succeeded] == ids[:2]
        assert failed[0]["Id"] == ids[2]
        assert failed[0]["sf__Error"].startswith("UNABLE_TO_LOCK_ROW:")
        assert state.record("Contact", ids[0])[SCORE] == 42.5

    def test_na_cell_blanks_and_empty_cell_keeps(self, state, sf):
        record_id = state.add_record("Contact", {SCORE: 80.0, "Influence_Segment__c": "high"})
        sf.bulk2.Contact.update(
            records=[{"Id": record_id, SCORE: "#N/A", "Influence_Segment__c": ""}], wait=0
        )
        record = state.record("Contact", record_id)
        assert (record[SCORE], record["Influence_Segment__c"]) == (None, "high")

    def test_job_reports_in_progress_before_complete(self, state, sf):
        (record_id,) = _contacts(state, 1)
        state.bulk_in_progress_polls = 2
        sf.bulk2.Contact.update(records=[{"Id": record_id, SCORE: "1"}], wait=0)
        assert state.calls(Endpoint.BULK_GET_JOB) == 4  # two InProgress, JobComplete, final read
        assert state.calls(Endpoint.BULK_CREATE_JOB) == state.calls(Endpoint.BULK_UPLOAD) == 1
        assert state.calls(Endpoint.BULK_SET_STATE) == 1

    def test_unknown_column_fails_the_job(self, state, sf):
        (record_id,) = _contacts(state, 1)
        with pytest.raises(SalesforceOperationError, match="Field name not found : Nope__c"):
            sf.bulk2.Contact.update(records=[{"Id": record_id, "Nope__c": "1"}], wait=0)

    def test_insert_job_creates_records(self, state, sf):
        results = sf.bulk2.Lead.insert(
            records=[{"Email": "new@example.com", "Do_Not_Score__c": "true"}], wait=0
        )
        succeeded = list(
            csv.DictReader(io.StringIO(sf.bulk2.Lead.get_successful_records(results[0]["job_id"])))
        )
        assert succeeded[0]["sf__Created"] == "true"
        assert state.record("Lead", succeeded[0]["sf__Id"])["Do_Not_Score__c"] is True

    def test_results_and_unprocessed_are_counted(self, state, sf):
        (record_id,) = _contacts(state, 1)
        results = sf.bulk2.Contact.update(records=[{"Id": record_id, SCORE: "3"}], wait=0)
        unprocessed = sf.bulk2.Contact.get_unprocessed_records(results[0]["job_id"])
        assert unprocessed.strip() == f"Id,{SCORE}" or unprocessed.strip() == f"{SCORE},Id"
        assert state.calls(Endpoint.BULK_RESULTS) == 1


class TestAuthentication:
    def test_unknown_session_is_401_with_array_body(self, state, server):
        client = _client(server, session_id="stale")
        with pytest.raises(SalesforceExpiredSession) as caught:
            client.query("SELECT Id FROM Contact")
        assert _body(caught.value) == [
            {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
        ]
        assert state.api_used == 0

    def test_revoked_session_is_refused(self, state, sf):
        state.revoke_session(DEFAULT_SESSION_ID)
        with pytest.raises(SalesforceExpiredSession):
            sf.limits()


class TestAllocation:
    def test_limit_info_header_on_every_response(self, state, sf):
        state.api_limit = 15_000
        sf.query("SELECT Id FROM Contact")
        sf.query("SELECT Id FROM Lead")
        assert sf.api_usage["api-usage"] == (2, 15_000)

    def test_spent_allocation_answers_request_limit_exceeded(self, state, sf):
        state.api_limit = 1
        sf.query("SELECT Id FROM Contact")
        with pytest.raises(SalesforceRefusedRequest) as caught:
            sf.query("SELECT Id FROM Contact")
        assert _body(caught.value) == [
            {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
        ]
        assert state.total_calls == 2


class TestFaults:
    @pytest.mark.parametrize(
        ("fault", "status", "code"),
        [
            (Fault.SERVER_ERROR, 500, "UNKNOWN_EXCEPTION"),
            (Fault.SERVICE_UNAVAILABLE, 503, "SERVER_UNAVAILABLE"),
        ],
    )
    def test_injected_server_errors(self, state, sf, fault, status, code):
        state.inject_fault(fault)
        with pytest.raises(SalesforceGeneralError) as caught:
            sf.query("SELECT Id FROM Contact")
        assert (caught.value.status, _first_error(caught.value)["errorCode"]) == (status, code)
        assert sf.query("SELECT Id FROM Contact")["done"] is True

    def test_concurrent_limit_fault(self, state, sf):
        state.inject_fault(Fault.CONCURRENT_LIMIT)
        with pytest.raises(SalesforceRefusedRequest) as caught:
            sf.query("SELECT Id FROM Contact")
        assert "ConcurrentRequests" in str(_first_error(caught.value)["message"])


class TestCallCounts:
    def test_total_and_per_endpoint_and_reset(self, state, sf):
        sf.query("SELECT Id FROM Contact")
        sf.limits()
        with pytest.raises(SalesforceResourceNotFound):
            sf.restful("nowhere")
        assert state.total_calls == 3
        assert state.call_counts() == {Endpoint.QUERY: 1, Endpoint.LIMITS: 1, Endpoint.UNKNOWN: 1}
        state.reset_calls()
        assert state.total_calls == 0
