"""Settings: one object, every bad setting named, every setting documented."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest

from shared.config.settings import Settings, SettingsError
from tests.conftest import BASE_ENV, REPO, make_env

IDENTITY_ONLY = {
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__tableServiceUri",
    "AzureWebJobsStorage__clientId",
}
ALIASES = {f.alias for f in Settings.model_fields.values() if f.alias}


def test_defaults_follow_the_seed_and_aci() -> None:
    s = Settings.from_env(BASE_ENV)
    assert (s.vnet_cidr, s.cluster_subnet_cidr, s.vnode_subnet_cidr) == ("10.0.0.0/8", "10.240.0.0/16", "10.241.0.0/16")
    assert (s.service_cidr, s.dns_service_ip) == ("10.0.0.0/16", "10.0.0.10")
    assert s.poison_queue == "vnb-requests-poison"
    assert s.default_memory == 1_500_000_000  # ACI's default, 1.5 GB decimal
    assert s.max_memory == 16_000_000_000


@pytest.mark.parametrize("name", ["q" * 57, "vnb-requests-poison"])
def test_a_requests_queue_the_host_would_give_no_poison_queue_is_refused(name: str) -> None:
    # 57 characters + "-poison" is over the 63-character limit; a "-poison" name gets none either.
    with pytest.raises(SettingsError) as e:
        Settings.from_env(make_env(VNB_REQUESTS_QUEUE=name))
    [(setting, message)] = e.value.problems
    assert setting == "VNB_REQUESTS_QUEUE"
    assert "at most 56 characters" in message
    assert Settings.from_env(make_env(VNB_REQUESTS_QUEUE="q" * 56)).poison_queue == "q" * 56 + "-poison"


def test_every_problem_is_listed_by_setting_name() -> None:
    env = {"VNB_MAX_CPU": "lots", "VNB_REQUESTS_QUEUE": "Bad_Name", "VNB_RECONCILE_SCHEDULE": "*/5 * * * *"}
    with pytest.raises(SettingsError) as e:
        Settings.from_env(env)
    named = {name for name, _ in e.value.problems}
    assert {
        "VNB_MAX_CPU",
        "VNB_REQUESTS_QUEUE",
        "VNB_RECONCILE_SCHEDULE",
        "VNB_EVENTS_QUEUE",
        "VNB_SCHEDULES_TIMER",
    } <= named
    text = str(e.value)
    assert "six fields, seconds first" in text
    assert "VNB_MAX_CPU" in text


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # an ACI ceiling (a model check) next to a single-setting error
        ({"VNB_MAX_CPU": "8", "VNB_LOG_TAIL_LINES": "-3"}, {"VNB_MAX_CPU", "VNB_LOG_TAIL_LINES"}),
        ({"VNB_NAMESPACE": "a--b", "VNB_MAX_CPU": "abc"}, {"VNB_NAMESPACE", "VNB_MAX_CPU"}),
        # a cross-field check next to a missing required setting, and a bad storage connection
        (
            {"VNB_DEFAULT_TIMEOUT_SECONDS": "7200", "VNB_MAX_TIMEOUT_SECONDS": "3600", "VNB_EVENTS_QUEUE": "",
             "AzureWebJobsStorage": ""},
            {"VNB_DEFAULT_TIMEOUT_SECONDS", "VNB_EVENTS_QUEUE", "AzureWebJobsStorage"},
        ),
        ({"VNB_MAX_MEMORY": "17G", "VNB_REQUESTS_QUEUE": "Bad_Name"}, {"VNB_MAX_MEMORY", "VNB_REQUESTS_QUEUE"}),
    ],
)
def test_cross_field_and_aci_checks_are_listed_with_the_single_setting_errors(
    overrides: dict[str, str], expected: set[str]
) -> None:
    with pytest.raises(SettingsError) as e:
        Settings.from_env(make_env(**overrides))
    names = [n for n, _ in e.value.problems]
    assert set(names) == expected, e.value
    assert len(names) == len(set(names))  # each once


NUMERIC_SETTINGS = [
    alias
    for f in Settings.model_fields.values()
    if (alias := f.alias) and alias.startswith("VNB_") and f.annotation in (int, float, Decimal, int | None)
]


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity"])
@pytest.mark.parametrize("name", NUMERIC_SETTINGS)
def test_non_finite_numbers_are_refused_naming_the_setting(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as e:
        Settings.from_env(make_env(**{name: value}))
    assert name in {n for n, _ in e.value.problems}, e.value


def test_a_float_setting_says_why_nan_is_refused() -> None:
    with pytest.raises(SettingsError) as e:
        Settings.from_env(make_env(VNB_KUBE_TIMEOUT_SECONDS="nan", VNB_READY_CACHE_SECONDS="1e999"))
    assert e.value.problems == [
        ("VNB_KUBE_TIMEOUT_SECONDS", "must be a finite number, not 'nan'"),
        ("VNB_READY_CACHE_SECONDS", "must be a finite number, not '1e999'"),  # float() reads it as inf
    ]


def test_a_cross_field_check_on_a_setting_that_failed_alone_is_not_reported_twice() -> None:
    # VNB_DEFAULT_CPU could not be read: "larger than VNB_MAX_CPU" would be about a stand-in value
    with pytest.raises(SettingsError) as e:
        Settings.from_env(make_env(VNB_DEFAULT_CPU="x", VNB_MAX_CPU="0.5"))
    [(name, message)] = e.value.problems
    assert name == "VNB_DEFAULT_CPU"
    assert "not a Kubernetes quantity" in message


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({"VNB_CLUSTER_MODE": "aks"}, "VNB_SUBSCRIPTION_ID"),
        ({"VNB_CLUSTER_MODE": "kubeconfig", "VNB_KUBECONFIG": ""}, "VNB_KUBECONFIG"),
        ({"AzureWebJobsStorage": ""}, "AzureWebJobsStorage"),
        ({"VNB_DEFAULT_CPU": "8"}, "VNB_DEFAULT_CPU"),
        ({"VNB_MAX_MEMORY": "512Gi"}, "VNB_MAX_MEMORY"),
        ({"VNB_CLUSTER_MODE": "magic"}, "VNB_CLUSTER_MODE"),
        ({"VNB_SERVICE_CIDR": "10.0.0.1/16"}, "VNB_SERVICE_CIDR"),
        ({"VNB_NODE_COUNT": "0"}, "VNB_NODE_COUNT"),
        ({"VNB_LEDGER_TABLE": "bad-name"}, "VNB_LEDGER_TABLE"),
        ({"VNB_LEDGER_RETENTION_SECONDS": "60"}, "VNB_LEDGER_RETENTION_SECONDS"),
        ({"VNB_CAPACITY_CORES": "0"}, "VNB_CAPACITY_CORES"),
        ({"VNB_CAPACITY_CONTAINER_GROUPS": "a hundred"}, "VNB_CAPACITY_CONTAINER_GROUPS"),
        ({"VNB_CAPACITY_WINDOW_SECONDS": "300"}, "VNB_CAPACITY_WINDOW_SECONDS"),
        ({"VNB_CAPACITY_WINDOW_SECONDS": "3600,300"}, "VNB_CAPACITY_WINDOW_SECONDS"),
        ({"VNB_CAPACITY_CREATES_PER_5MIN": "500"}, "VNB_CAPACITY_CREATES_PER_5MIN"),
        ({"VNB_CAPACITY_CACHE_SECONDS": "-1"}, "VNB_CAPACITY_CACHE_SECONDS"),
        ({"VNB_SCHEDULES_TIMER": "*/30 * * * * *"}, "VNB_SCHEDULES_TIMER"),
        ({"VNB_SCHEDULES_TIMER": "* * * * * *"}, "VNB_SCHEDULES_TIMER"),
        ({"VNB_SCHEDULES_TIMER": "0,30 0 * * * *"}, "VNB_SCHEDULES_TIMER"),
        ({"VNB_SCHEDULES_TIMER": "00:00:30"}, "VNB_SCHEDULES_TIMER"),
    ],
)
def test_bad_setting_is_named(overrides: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError) as e:
        Settings.from_env(make_env(**overrides))
    assert name in {n for n, _ in e.value.problems}, e.value


def test_identity_connection_needs_no_connection_string() -> None:
    env = make_env(AzureWebJobsStorage="")
    env["AzureWebJobsStorage__queueServiceUri"] = "https://acct.queue.core.windows.net"
    env["AzureWebJobsStorage__tableServiceUri"] = "https://acct.table.core.windows.net"
    assert Settings.from_env(env).storage_queue_uri == "https://acct.queue.core.windows.net"


def test_identity_connection_names_the_missing_table_uri() -> None:
    env = make_env(AzureWebJobsStorage="")
    env["AzureWebJobsStorage__queueServiceUri"] = "https://acct.queue.core.windows.net"
    with pytest.raises(SettingsError) as e:
        Settings.from_env(env)
    assert "AzureWebJobsStorage__tableServiceUri" in {n for n, _ in e.value.problems}


def test_sample_local_settings_lists_every_setting() -> None:
    values = json.loads((REPO / "local.settings.sample.json").read_text())["Values"]
    missing = ALIASES - IDENTITY_ONLY - set(values)
    assert not missing, f"add to local.settings.sample.json: {sorted(missing)}"
    unknown = {k for k in values if k.startswith("VNB_")} - ALIASES
    assert not unknown, f"not settings: {sorted(unknown)}"


def test_readme_table_documents_every_setting_with_its_default() -> None:
    readme = (REPO / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Za-z0-9_]+)` \|", readme, flags=re.M))
    missing = ALIASES - documented
    assert not missing, f"add to the README settings table: {sorted(missing)}"


def test_readme_table_is_generated_from_the_settings_object() -> None:
    from shared.config.settings import markdown_table

    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- settings-table:start -->\n", 1)[1].split("<!-- settings-table:end -->", 1)[0]
    assert block.strip() == markdown_table().strip(), "regenerate: python -m shared.config.settings"


def test_readme_starts_with_the_two_commands() -> None:
    readme = (REPO / "README.md").read_text()
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["./scripts/demo", "./scripts/test"]
    ci = (REPO / ".ci" / "run").read_text()
    assert "exec scripts/test" in ci


@pytest.mark.parametrize(
    ("overrides", "name", "phrase"),
    [
        # The example: 16Gi is 17.18 GB as the virtual node converts it, over ACI's 16 GB.
        ({"VNB_MAX_MEMORY": "16Gi"}, "VNB_MAX_MEMORY", "not `16Gi` = 17.18 GB"),
        ({"VNB_MAX_MEMORY": "15Gi"}, "VNB_MAX_MEMORY", "16.11 GB is more"),
        ({"VNB_MAX_CPU": "8"}, "VNB_MAX_CPU", "at most 4 vCPU"),
        ({"VNB_NAMESPACE": "batch--jobs"}, "VNB_NAMESPACE", "consecutive hyphens"),
        ({"VNB_NAMESPACE": "Batch"}, "VNB_NAMESPACE", "lowercase"),
        ({"VNB_NAMESPACE": "kube-system"}, "VNB_NAMESPACE", "namespace of its own"),
        ({"VNB_NAMESPACE": "default"}, "VNB_NAMESPACE", "namespace of its own"),
        ({"VNB_NAMESPACE": "gatekeeper-system"}, "VNB_NAMESPACE", "namespace of its own"),
        ({"VNB_NAMESPACE": "aks-command"}, "VNB_NAMESPACE", "namespace of its own"),
        ({"VNB_NAMESPACE": "kube-anything"}, "VNB_NAMESPACE", "namespace of its own"),
        ({"VNB_NAMESPACE": "vnode-batch\n"}, "VNB_NAMESPACE", "lowercase"),
        ({"VNB_NAMESPACE": "n" * 40}, "VNB_NAMESPACE", "at most 39 characters"),
        ({"VNB_NAMESPACE": "n" * 43, "VNB_MAX_COMPLETIONS": "1"}, "VNB_NAMESPACE", "at most 42 characters"),
        ({"VNB_NAMESPACE": "n" * 39, "VNB_MAX_COMPLETIONS": "1001"}, "VNB_NAMESPACE", "VNB_MAX_COMPLETIONS=1001"),
    ],
)
def test_settings_aci_cannot_honour_are_named(overrides: dict[str, str], name: str, phrase: str) -> None:
    with pytest.raises(SettingsError) as e:
        Settings.from_env(make_env(**overrides))
    problems = dict(e.value.problems)
    assert name in problems, e.value
    assert phrase in problems[name]


def test_the_longest_namespace_that_leaves_room_is_accepted() -> None:
    assert Settings.from_env(make_env(VNB_NAMESPACE="n" * 39)).job_name_budget == 14
    assert Settings.from_env(make_env(VNB_NAMESPACE="n" * 42, VNB_MAX_COMPLETIONS="1")).job_name_budget == 14
    assert Settings.from_env(make_env(VNB_MAX_MEMORY="16G", VNB_MAX_CPU="4")).max_memory == 16 * 10**9


@pytest.mark.parametrize("timer", ["0 * * * * *", "30 */5 * * * *", "0 0 2 * * *", "00:01:00", "01:00:00"])
def test_a_schedules_timer_firing_at_most_once_a_minute_is_accepted(timer: str) -> None:
    # The host keeps its schedule monitor (catch-up) only for these (TimerSchedule.Create).
    assert Settings.from_env(make_env(VNB_SCHEDULES_TIMER=timer)).schedules_timer == timer


def test_the_reconcile_timer_may_still_fire_every_few_seconds() -> None:
    # Reconcile needs no catch-up: a sub-minute schedule stays allowed there.
    assert Settings.from_env(make_env(VNB_RECONCILE_SCHEDULE="*/15 * * * * *")).reconcile_schedule == "*/15 * * * * *"
