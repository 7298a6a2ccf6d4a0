"""kube-controller-manager, kube-scheduler and the kubelet as the stand-in runs them: one mixin per
controller over the cluster's shared state (``kube.state``), composed in ``kube.cluster.Cluster``."""
