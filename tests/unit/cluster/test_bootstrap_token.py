"""The Kubernetes token source and the ARM client options of the bootstrap adapter (pure parts)."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.credentials import AccessToken

from shared.adapters.arm import AKS_ENTRA_SCOPE, TOKEN_REFRESH_MARGIN_SECONDS, KubeToken, arm_scope


class Credential:
    """A TokenCredential that hands out numbered tokens living ``lifetime`` seconds."""

    def __init__(self, clock: list[float], lifetime: float = 3600) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(f"token-{len(self.scopes)}", int(self.clock[0] + self.lifetime))


def test_the_token_is_reused_until_five_minutes_before_expiry() -> None:
    clock = [1_000_000.0]
    credential = Credential(clock)
    token = KubeToken(credential, clock=lambda: clock[0])  # type: ignore[arg-type]
    assert [token() for _ in range(1000)] == ["token-1"] * 1000
    assert credential.scopes == [(AKS_ENTRA_SCOPE,)]

    clock[0] += 3600 - TOKEN_REFRESH_MARGIN_SECONDS - 1  # still more than 5 minutes left
    assert token() == "token-1"
    clock[0] += 2  # now within the margin: fetched again, before it can expire mid-request
    assert token() == "token-2"
    assert token() == "token-2"
    assert token.fetches == 2


def test_a_short_lived_token_is_fetched_every_time() -> None:
    clock = [0.0]
    token = KubeToken(Credential(clock, lifetime=120), clock=lambda: clock[0])  # type: ignore[arg-type]
    assert [token(), token()] == ["token-1", "token-2"]


@pytest.mark.parametrize(
    ("endpoint", "scope"),
    [
        ("https://management.azure.com", "https://management.azure.com/.default"),
        ("https://management.azure.com/", "https://management.azure.com/.default"),
        ("https://management.chinacloudapi.cn", "https://management.chinacloudapi.cn/.default"),
        ("https://management.usgovcloudapi.net", "https://management.usgovcloudapi.net/.default"),
        ("https://127.0.0.1:8443", "https://management.azure.com/.default"),  # a stand-in: public audience
    ],
)
def test_arm_scope(endpoint: str, scope: str) -> None:
    assert arm_scope(endpoint) == scope
