"""The Kubernetes stand-in: a fake kube-apiserver over HTTPS (``apiserver.KubeStandIn``) with its
store, objects, selectors and patches, and the controllers that move the objects (``controllers/``).
Import from the modules (``from devtools.standins.kube.apiserver import KubeStandIn``): this package
imports nothing, so ``virtual_node`` can use ``kube.objects`` without loading the whole cluster."""
