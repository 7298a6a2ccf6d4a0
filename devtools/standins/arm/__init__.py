"""The Azure Resource Manager stand-in: ``standin.ArmStandIn`` over HTTPS, one module per resource
provider (network, managed clusters, managed namespaces, credentials, power, authorization, resource
groups), the managed-identity token service (``identity``) and the LRO machinery (``operations``,
``faults``, ``server``) apart. Each of those is a mixin over the state ``standin.ArmStandIn.__init__``
sets up (one lock, one set of tables). Import from the modules; this package imports nothing."""
