"""GET /metrics over real HTTP: what a launch, a join, a poll and a webhook count, who may read
it (loopback, METRICS_ALLOW, METRICS_TOKEN, the proxies the tool trusts), and that nothing in it
is a secret or names a person."""
from __future__ import annotations

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from lti_tool import ConfigurationError, create_app
from tests.conftest import tool_overrides
from tests.support import ClassRun, hour_long_class, post_bbb_events

TOKEN = "m" * 16 + "-metrics-token-0123456789"


def scrape(live, **headers) -> requests.Response:
    return requests.get(f"{live.url}/metrics", headers=headers, timeout=10)


def samples(live) -> dict[tuple, float]:
    answer = scrape(live)
    assert answer.status_code == 200, answer.text[:300]
    assert answer.headers["Content-Type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text) for sample in family.samples}


def value(found: dict, name: str, **labels) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_launch_counts_one_login_and_one_launch_into_a_room(live):
    before = samples(live)
    live.launch("student")
    after = samples(live)
    assert value(after, "lti_tool_launches_total", outcome="room") == value(
        before, "lti_tool_launches_total", outcome="room") + 1
    logins = "lti_tool_logins_total"
    assert value(after, logins, outcome="ok") == value(before, logins, outcome="ok") + 1
    latency = "lti_tool_http_request_duration_seconds_count"
    assert value(after, latency, endpoint="lti.launch") == value(before, latency, endpoint="lti.launch") + 1


def test_a_refused_launch_counts_as_refused_and_as_a_4xx_of_its_endpoint(live):
    before = samples(live)
    answer = requests.post(f"{live.url}/lti/launch", data={"id_token": "not-a-token"}, timeout=10)
    assert answer.status_code == 400
    after = samples(live)
    assert value(after, "lti_tool_launches_total", outcome="refused") == value(
        before, "lti_tool_launches_total", outcome="refused") + 1
    failures = "lti_tool_http_failures_total"
    assert value(after, failures, endpoint="lti.launch", status="4xx") == value(
        before, failures, endpoint="lti.launch", status="4xx") + 1


def test_joins_polls_and_webhook_events_are_counted(live):
    teacher = live.launch("teacher")
    run = ClassRun(live, teacher)  # the teacher has started the class: one join
    before = samples(live)
    poll = teacher.session.get(teacher.url("/status"), headers={"X-Room-Ticket": teacher.ticket,
                                                                "Accept": "application/json"}, timeout=10)
    assert poll.status_code == 200
    assert teacher.join().status_code in (302, 303)
    assert post_bbb_events(live, [run.created(), run.joined("teacher", 0)]).status_code == 200
    after = samples(live)
    polls = "lti_tool_room_polls_total"
    assert value(after, polls, outcome="ok") == value(before, polls, outcome="ok") + 1
    assert value(after, "lti_tool_joins_total", outcome="ok") == value(before, "lti_tool_joins_total", outcome="ok") + 1
    received = ("lti_tool_webhook_events_total", {"provider": "bbb", "outcome": "applied"})
    assert value(after, received[0], **received[1]) == value(before, received[0], **received[1]) + 2


def test_the_backlog_is_read_from_the_database_at_scrape_time(live):
    found = samples(live)
    assert ("lti_tool_grades_pending", (("state", "new"),)) in found
    assert ("lti_tool_events_unapplied", (("status", "pending"),)) in found


def test_the_output_holds_no_secret_no_ticket_and_no_person(live):
    student = live.launch("student")
    student.join()
    text = scrape(live).text
    for secret in (student.page_ticket, student.ticket, live.platform.issuer, "test-secret-key",
                   live.app.config["BBB_SHARED_SECRET"], live.app.config["LIVEKIT_API_SECRET"]):
        assert secret not in text
    # Labels name endpoints and outcomes only: never a person, a room or a course.
    labels = {name for (_, pairs) in samples(live) for name, _ in pairs}
    assert labels <= {"endpoint", "outcome", "status", "provider", "state", "le", "generation",
                      "implementation", "major", "minor", "patchlevel", "version"}, labels
    sub = live.platform.user("student").sub
    assert all(label != sub for (_, pairs) in samples(live) for _, label in pairs)


@pytest.mark.parametrize("live_overrides", [{"METRICS_ALLOW": "10.0.0.0/8", "METRICS_TOKEN": TOKEN}])
def test_outside_the_allowed_addresses_only_the_token_opens_it(live):
    assert scrape(live).status_code == 404
    assert scrape(live, Authorization="Bearer " + TOKEN[:-1] + "x").status_code == 404
    assert scrape(live, Authorization="Basic " + TOKEN).status_code == 404
    opened = scrape(live, Authorization="Bearer " + TOKEN)
    assert opened.status_code == 200 and "lti_tool_launches_total" in opened.text


def test_a_request_through_an_untrusted_proxy_is_not_local(live):
    """nginx on the same machine connects from 127.0.0.1: without TRUSTED_PROXIES, a request it
    forwards must not pass for a local one."""
    assert scrape(live, **{"X-Forwarded-For": "203.0.113.9"}).status_code == 404
    assert scrape(live).status_code == 200


@pytest.mark.parametrize("live_overrides", [{"TRUSTED_PROXIES": "1"}])
def test_behind_a_trusted_proxy_the_forwarded_client_address_decides(live):
    assert scrape(live, **{"X-Forwarded-For": "203.0.113.9"}).status_code == 404
    # A client's own X-Forwarded-For comes first; the proxy appends the address it saw.
    assert scrape(live, **{"X-Forwarded-For": "127.0.0.1, 203.0.113.9"}).status_code == 404
    assert scrape(live, **{"X-Forwarded-For": "127.0.0.1"}).status_code == 200


@pytest.mark.parametrize("setting", [
    {"METRICS_TOKEN": "short"},
    {"METRICS_ALLOW": "127.0.0.1/32 not-a-network"},
    {"LOG_FORMAT": "xml"},
    {"TRUSTED_PROXIES": "1.5"},
])
def test_unusable_production_settings_stop_the_start_with_a_sentence(setting, migrated, database_url, keys_dir,
                                                                      tmp_path):
    config = tmp_path / "tool_config.json"
    config.write_text("{}")
    with pytest.raises(ConfigurationError) as refused:
        create_app(tool_overrides(database_url, keys_dir, config, **setting))
    name = next(iter(setting))
    assert name in str(refused.value)
    if name == "METRICS_TOKEN":
        assert "short" not in str(refused.value), "the token is never repeated"


def test_grade_deliveries_and_the_backlog_are_counted(live):
    """A class's scores wait (the backlog gauge), then the worker delivers them (the counter);
    a platform answering 429 once makes one retry."""
    before = samples(live)
    hour_long_class(live)
    waiting = samples(live)
    assert value(waiting, "lti_tool_grades_pending", state="new") > 0
    live.platform.fail_next(1, status=429)
    live.run_worker()
    after = samples(live)
    delivered = "lti_tool_grade_deliveries_total"
    assert value(after, delivered, outcome="retry") == value(before, delivered, outcome="retry") + 1
    assert value(after, delivered, outcome="delivered") > value(before, delivered, outcome="delivered")
    # The retry was due at once (RETRY_BASE_SECONDS is 0.01 here): nothing waits any more.
    assert value(after, "lti_tool_grades_pending", state="new") == value(after, "lti_tool_grades_pending",
                                                                         state="retrying") == 0
