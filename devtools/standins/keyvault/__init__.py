"""The Key Vault stand-in: the secrets data-plane API over HTTPS (``server.KeyVaultStandIn``)."""
