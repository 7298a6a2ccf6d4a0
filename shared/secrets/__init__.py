"""Secrets a request gets without them ever travelling in a message: the per-request Secret of
files from Key Vault, its mount in the Job, and masking of its values (pure: values, no I/O)."""
