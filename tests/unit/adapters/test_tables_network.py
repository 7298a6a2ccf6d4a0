"""The table client resolves the environment's network settings once (shared.adapters.tables)."""

from __future__ import annotations

import pytest

from shared.adapters.tables import network_options


def test_a_proxy_from_the_environment_is_kept_for_the_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    options = network_options("https://account.table.core.windows.net")
    assert options["proxies"]["https"] == "http://proxy.example:3128"
    transport = options["transport"]
    transport.open()
    try:
        assert transport.session.trust_env is False  # not re-read on every call
    finally:
        transport.close()


def test_no_proxy_still_bypasses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", ".table.core.windows.net")
    assert "proxies" not in network_options("https://account.table.core.windows.net")


def test_a_ca_bundle_from_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/corp-ca.pem")
    assert network_options("https://account.table.core.windows.net")["connection_verify"] == "/etc/corp-ca.pem"
