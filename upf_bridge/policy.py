"""Policy routing for a VNet: which ip rules and which route table it needs. Pure.

Each VNet has its own route table. Three kinds of rule lead into it, in this order:

- ``from <UE pool> lookup <table>``: traffic of the tenant's UEs that this node
  routes takes the tenant's VNet and nothing else;
- ``iif <VNet interface> lookup <table>``: traffic the tenant's VMs send through
  their gateway stays within what the tenant may reach;
- ``to <UE pool> lookup <table>``: anything else bound for the tenant's UEs (this
  node's own ICMP errors, say) reaches them through their VNet, not the uplink.

The table always ends in a route (the tenant's next hop, or ``unreachable``), so a
lookup never falls through to the main table, where the other tenants' subnets are.
That is what keeps one tenant's VNet from reaching another's through this node.
"""

from __future__ import annotations

from upf_bridge.model import VNet
from upf_bridge.naming import OwnedRanges
from upf_bridge.state import Address, Resource, Route, Rule

DEFAULT_DST = "0.0.0.0/0"


def gateway_address(vnet: VNet, dev: str) -> Address:
    return Address(dev=dev, cidr=f"{vnet.gateway}/{vnet.subnet.prefixlen}")


def vnet_routes(vnet: VNet, dev: str, table: int) -> list[Route]:
    routes = [Route(table=table, dst=str(vnet.subnet), dev=dev)]
    for pool in vnet.ue_pools:
        if vnet.upf_address is not None:
            routes.append(Route(table=table, dst=str(pool), gateway=str(vnet.upf_address), dev=dev))
        elif vnet.upf_dev is not None:
            routes.append(Route(table=table, dst=str(pool), dev=vnet.upf_dev))
    if vnet.next_hop is not None:
        routes.append(Route(table=table, dst=DEFAULT_DST, gateway=str(vnet.next_hop), dev=dev))
    else:
        routes.append(Route(table=table, dst=DEFAULT_DST, route_type="unreachable"))
    return routes


def vnet_rules(vnet: VNet, dev: str, table: int, ranges: OwnedRanges) -> list[Rule]:
    rules = [Rule(priority=ranges.priority, table=table, src=str(p)) for p in vnet.ue_pools]
    rules.append(Rule(priority=ranges.iif_priority, table=table, iif=dev))
    rules += [Rule(priority=ranges.to_priority, table=table, dst=str(p)) for p in vnet.ue_pools]
    return rules


def vnet_l3(vnet: VNet, dev: str, ranges: OwnedRanges) -> list[Resource]:
    """Gateway address, route table and rules of a VNet whose gateway lives on ``dev``."""
    table = ranges.table_for(vnet.trunk, vnet.vlan)
    return [
        gateway_address(vnet, dev),
        *vnet_routes(vnet, dev, table),
        *vnet_rules(vnet, dev, table, ranges),
    ]
