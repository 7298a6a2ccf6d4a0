"""Bootstrap of the AKS cluster (aks mode). Placeholder until the bootstrap lands."""

from __future__ import annotations

from shared.services.dispatch import Readiness
from shared.settings import Settings


class AksGate:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def check(self) -> Readiness:
        return Readiness(cluster=None, reason="aks mode is not available in this build", hopeless=True)
