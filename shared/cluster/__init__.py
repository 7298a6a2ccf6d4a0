"""The AKS cluster: readiness, network/cluster/access plans, bootstrap, the gate, idle power."""
