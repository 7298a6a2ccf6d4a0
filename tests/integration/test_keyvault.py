"""The Key Vault adapter against the Key Vault stand-in, through the real azure-keyvault-secrets
client and azure-identity (managed identity via the ARM stand-in's token endpoint), bearer
challenge included."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.standins.arm.standin import CREDENTIAL_ENV_CONFLICTS, ArmStandIn
from devtools.standins.keyvault.server import KeyVaultStandIn
from shared.adapters.keyvault import VaultReader, VaultSecretForbidden, VaultSecretMissing
from shared.base.errors import TransientError

pytestmark = pytest.mark.integration


@pytest.fixture
def vault(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ArmStandIn, KeyVaultStandIn]]:
    with ArmStandIn() as arm:
        for name in CREDENTIAL_ENV_CONFLICTS:
            monkeypatch.delenv(name, raising=False)
        for name, value in arm.credential_env().items():
            monkeypatch.setenv(name, value)
        with KeyVaultStandIn(validate_token=arm.validate_token, readers={arm.app_principal_id}) as kv:
            yield arm, kv


def test_reads_a_secret_after_the_bearer_challenge(vault: tuple[ArmStandIn, KeyVaultStandIn]) -> None:
    _, kv = vault
    kv.set_secret("db-password", "s3cr3t-value")
    reader = VaultReader(kv.url)
    assert reader.read("db-password") == "s3cr3t-value"
    assert reader.read("db-password") == "s3cr3t-value"
    assert kv.counters.challenges == 1  # the SDK caches the challenge per vault
    assert kv.counters.reads == 2


def test_missing_disabled_and_forbidden_are_permanent(vault: tuple[ArmStandIn, KeyVaultStandIn]) -> None:
    _, kv = vault
    kv.set_secret("off", "x-value")
    kv.disabled.add("off")
    reader = VaultReader(kv.url)
    with pytest.raises(VaultSecretMissing, match="not found"):
        reader.read("nope")
    with pytest.raises(VaultSecretMissing, match="disabled"):
        reader.read("off")
    kv.readers.clear()
    with pytest.raises(VaultSecretForbidden, match="Key Vault Secrets User") as e:
        reader.read("off")
    assert "x-value" not in str(e.value)


def test_throttling_is_transient(vault: tuple[ArmStandIn, KeyVaultStandIn]) -> None:
    _, kv = vault
    kv.set_secret("db-password", "v")
    kv.throttle_next = 10
    with pytest.raises(TransientError) as e:
        VaultReader(kv.url).read("db-password")
    assert e.value.status == 429
    kv.throttle_next = 1  # one 429, then the SDK's own retry succeeds
    assert VaultReader(kv.url).read("db-password") == "v"
