"""Adapters: the only modules that do I/O (Kubernetes, Storage queues, ARM)."""
