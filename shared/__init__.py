"""vnode-batch library: pure modules, adapters (Kubernetes, ARM, queues) and services.

Nothing in this package imports azure.functions; the functions/ blueprints call into it.
"""
