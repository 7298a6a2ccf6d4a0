// What the app's identity may do in the cluster resource group, which the template creates EMPTY:
// exactly what the bootstrap needs (DESIGN.md "Bootstrap") and nothing at subscription scope.
// targetScope is the cluster resource group; an assignment without `scope` applies to the group.
// The group is the narrowest scope Azure allows here: the vnet and the cluster do not exist yet.
param principalId string

var networkContributor = '4d97b98b-1d4f-4787-a291-c67834d212e7'
var aksContributor = 'ed7f3fbd-7b88-4dd4-9017-9adb7ce333f8'
var rbacAdministrator = 'f58310d9-a9f6-439a-9e8d-f62e7b41a168'

// The documented templates "Constrain roles and principal types" and "Constrain roles and specific
// principals" (learn.microsoft.com/azure/role-based-access-control/delegate-role-assignments-examples;
// attributes: .../conditions-authorization-actions-attributes, which gives roleAssignments/write the
// request attributes RoleDefinitionId, PrincipalId and PrincipalType, and roleAssignments/delete the
// same as resource attributes; there is no scope attribute, so a condition cannot limit WHERE a role
// is assigned; syntax: .../conditions-format).
// WRITE (@Request) only:
//   - Network Contributor (4d97b98b-...) to a service principal: bootstrap grants it to the cluster's
//     and the virtual-node addon's identities, whose ids exist only once the cluster does;
//   - Azure Kubernetes Service RBAC Writer (a7ffa36f-...) to the app's OWN principal, nobody else.
// DELETE (@Resource) only the app's OWN assignments of the bootstrap-only roles: Network Contributor,
// AKS Contributor (ed7f3fbd-...) and RBAC Administrator (f58310d9-..., this very assignment). The
// bootstrap's last step deletes them once the cluster is ready (shared/cluster/roles.py
// BOOTSTRAP_ONLY_ROLES); nothing else can be deleted (not the cluster's or the addon's grants, not the
// app's steady-state role, not its namespace RBAC Writer).
// Any other role, Owner and RBAC Administrator included, is refused. Keep the GUID lists equal to
// shared/cluster/roles.py (tests/infra checks it). Still possible WHILE this assignment exists
// (docs/deploy.md): the app may give ITSELF RBAC Writer at cluster scope, since no attribute names the
// scope; after the bootstrap gives this assignment up, it cannot write role assignments at all.
var rbacAdministratorCondition = '((!(ActionMatches{\'Microsoft.Authorization/roleAssignments/write\'})) OR (@Request[Microsoft.Authorization/roleAssignments:PrincipalType] ForAnyOfAnyValues:StringEqualsIgnoreCase {\'ServicePrincipal\'} AND ((@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {4d97b98b-1d4f-4787-a291-c67834d212e7}) OR (@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb} AND @Request[Microsoft.Authorization/roleAssignments:PrincipalId] ForAnyOfAnyValues:GuidEquals {${principalId}})))) AND ((!(ActionMatches{\'Microsoft.Authorization/roleAssignments/delete\'})) OR (@Resource[Microsoft.Authorization/roleAssignments:PrincipalId] ForAnyOfAnyValues:GuidEquals {${principalId}} AND @Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {4d97b98b-1d4f-4787-a291-c67834d212e7, ed7f3fbd-7b88-4dd4-9017-9adb7ce333f8, f58310d9-a9f6-439a-9e8d-f62e7b41a168}))'

// The app's rights once the cluster exists: a custom role with exactly the ARM calls it then makes
// (shared/cluster/roles.py STEADY_STATE_ACTIONS; operation names from "Azure permissions for
// Containers" / "... for Networking", learn.microsoft.com/azure/role-based-access-control/permissions/).
// Read the group, the vnet, the cluster, its managed namespaces and role assignments; the user credential
// (server URL and CA); start and stop (idle stop). No write, no admin credential, no runCommand, no
// role assignment write. Assignable only in this group. A custom role's name must be unique in the
// tenant ("Azure custom roles", learn.microsoft.com/azure/role-based-access-control/custom-roles),
// hence the group's id in it; its GUID is derived from the group's id for the same reason.
var steadyStateRoleGuid = guid(resourceGroup().id, 'vnode-batch-steady-state')

resource steadyStateRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: steadyStateRoleGuid
  properties: {
    roleName: 'vnode-batch steady state ${uniqueString(resourceGroup().id)}'
    description: 'vnode-batch after bootstrap: read the network and the AKS cluster, list the user credential, start/stop the cluster, read managed namespaces and role assignments.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.Resources/subscriptions/resourceGroups/read'
          'Microsoft.Network/virtualNetworks/read'
          'Microsoft.ContainerService/managedClusters/read'
          'Microsoft.ContainerService/managedClusters/listClusterUserCredential/action'
          'Microsoft.ContainerService/managedClusters/start/action'
          'Microsoft.ContainerService/managedClusters/stop/action'
          'Microsoft.ContainerService/managedClusters/managedNamespaces/read'
          'Microsoft.Authorization/roleAssignments/read'
        ]
        notActions: []
      }
    ]
    assignableScopes: [
      resourceGroup().id
    ]
  }
}

// BOOTSTRAP ONLY (given up by the app when the cluster is ready; `azd provision` assigns it again).
// Network Contributor: create the vnet and both subnets, and join the cluster subnet when the
// managed cluster is created (Microsoft.Network/virtualNetworks/subnets/join/action is checked on
// the caller of the AKS PUT).
resource appNetworkContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, networkContributor)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', networkContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'vnode-batch bootstrap: vnet, subnets, subnet join for AKS.'
  }
}

// Azure Kubernetes Service Contributor Role: create and update the managed cluster (PUT with the
// aciConnectorLinux addon) and read its state, and create the app's namespace as an AKS managed
// namespace (managedClusters/managedNamespaces/write, under managedClusters/*): the app holds no
// cluster-scope Kubernetes rights, so it cannot create a Namespace through the Kubernetes API. The
// node resource group (MC_...) is created by the AKS resource provider itself, so no subscription-
// scope right is needed for it. BOOTSTRAP ONLY: given up by the app when the cluster is ready.
resource appAksContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, aksContributor)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', aksContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'vnode-batch bootstrap: create/update the AKS cluster and its virtual-node addon.'
  }
}

// STEADY STATE: the custom role above, kept for as long as the app runs.
resource appSteadyState 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, steadyStateRoleGuid)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', steadyStateRoleGuid)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'vnode-batch steady state: read, user credential, start/stop the cluster.'
  }
  dependsOn: [
    steadyStateRole
  ]
}

// BOOTSTRAP ONLY. Role Based Access Control Administrator, limited by the condition above: bootstrap
// grants Network Contributor to the cluster identity (cluster subnet) and to the addon identity
// (virtual-node subnet), and AKS RBAC Writer to the app's own identity on the Jobs namespace; then
// deletes the app's own bootstrap-only assignments, this one last.
resource appRbacAdministrator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, rbacAdministrator)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', rbacAdministrator)
    principalId: principalId
    principalType: 'ServicePrincipal'
    condition: rbacAdministratorCondition
    conditionVersion: '2.0'
    description: 'vnode-batch bootstrap: may assign only Network Contributor (to service principals) and AKS RBAC Writer (to itself), and delete only its own bootstrap roles.'
  }
}
