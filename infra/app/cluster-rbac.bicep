// What the app's identity may do in the cluster resource group, which the template creates EMPTY:
// exactly what the bootstrap needs (DESIGN.md "Bootstrap") and nothing at subscription scope.
// targetScope is the cluster resource group; an assignment without `scope` applies to the group.
// The group is the narrowest scope Azure allows here: the vnet and the cluster do not exist yet.
param principalId string

var networkContributor = '4d97b98b-1d4f-4787-a291-c67834d212e7'
var aksContributor = 'ed7f3fbd-7b88-4dd4-9017-9adb7ce333f8'
var aksClusterUser = '4abbcc35-e782-43d8-92c5-2d3f1bd2253f'
var rbacAdministrator = 'f58310d9-a9f6-439a-9e8d-f62e7b41a168'

// The documented templates "Constrain roles and principal types" and "Constrain roles and specific
// principals" (learn.microsoft.com/azure/role-based-access-control/delegate-role-assignments-examples;
// attributes: .../conditions-authorization-actions-attributes, which gives roleAssignments/write the
// request attributes RoleDefinitionId, PrincipalId and PrincipalType, and roleAssignments/delete the
// same as resource attributes; there is no scope attribute, so a condition cannot limit WHERE a role
// is assigned). Writes (@Request) and deletes (@Resource) of role assignments are allowed only for:
//   - Network Contributor (4d97b98b-...) to a service principal: bootstrap grants it to the cluster's
//     and the virtual-node addon's identities, whose ids exist only once the cluster does;
//   - Azure Kubernetes Service RBAC Writer (a7ffa36f-...) to the app's OWN principal, nobody else
//     (before: to any service principal in the tenant).
// Any other role, Owner and RBAC Administrator included, is refused. Keep the GUID lists equal to
// shared/cluster/roles.py ASSIGNABLE_ROLES (tests/infra checks it). Still possible (docs/deploy.md):
// the app may give ITSELF RBAC Writer at cluster scope, since no attribute names the scope.
var rbacAdministratorCondition = '((!(ActionMatches{\'Microsoft.Authorization/roleAssignments/write\'})) OR (@Request[Microsoft.Authorization/roleAssignments:PrincipalType] ForAnyOfAnyValues:StringEqualsIgnoreCase {\'ServicePrincipal\'} AND ((@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {4d97b98b-1d4f-4787-a291-c67834d212e7}) OR (@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb} AND @Request[Microsoft.Authorization/roleAssignments:PrincipalId] ForAnyOfAnyValues:GuidEquals {${principalId}})))) AND ((!(ActionMatches{\'Microsoft.Authorization/roleAssignments/delete\'})) OR (@Resource[Microsoft.Authorization/roleAssignments:PrincipalType] ForAnyOfAnyValues:StringEqualsIgnoreCase {\'ServicePrincipal\'} AND ((@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {4d97b98b-1d4f-4787-a291-c67834d212e7}) OR (@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb} AND @Resource[Microsoft.Authorization/roleAssignments:PrincipalId] ForAnyOfAnyValues:GuidEquals {${principalId}}))))'

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
// scope right is needed for it. Once the cluster and the namespace are built this assignment may be
// removed; the app then keeps only what steady state needs.
resource appAksContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, aksContributor)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', aksContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'vnode-batch bootstrap: create/update the AKS cluster and its virtual-node addon.'
  }
}

// Azure Kubernetes Service Cluster User Role: listClusterUserCredential, i.e. the server URL and CA
// the app pairs with its Entra ID token. AKS Contributor (managedClusters/*) covers it today; it is
// assigned on its own so that steady-state access survives removing AKS Contributor.
resource appAksClusterUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, aksClusterUser)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', aksClusterUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'vnode-batch: list the cluster user credential (server URL and CA).'
  }
}

// Role Based Access Control Administrator, limited by the condition above: bootstrap grants Network
// Contributor to the cluster identity (cluster subnet) and to the addon identity (virtual-node
// subnet), and AKS RBAC Writer to the app's own identity on the Jobs namespace.
resource appRbacAdministrator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, rbacAdministrator)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', rbacAdministrator)
    principalId: principalId
    principalType: 'ServicePrincipal'
    condition: rbacAdministratorCondition
    conditionVersion: '2.0'
    description: 'vnode-batch bootstrap: may assign only Network Contributor (to service principals) and AKS RBAC Writer (to itself).'
  }
}
