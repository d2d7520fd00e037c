"""A simulated N6 backend: the real backends' plan, diff and rollback, on memory.

For nodes and tests without Open vSwitch, netlink rights or 802.1Q: it computes the
same objects as the OVS (or Linux) backend for each VNet, diffs and applies them the
same way, all or nothing, and changes nothing on the host. ``fail_on`` makes a chosen
step fail, as a refusing kernel would, so callers can exercise their error paths.
"""

from __future__ import annotations

from collections.abc import Callable

from towerbox_core.errors import BackendError
from upf_bridge import naming
from upf_bridge.backends import linux, ovs
from upf_bridge.backends.base import Attachment, InterfaceCounters, VNetCounters
from upf_bridge.backends.datapaths import KERNEL, USERSPACE, Datapaths
from upf_bridge.backends.reconcile import Reconciler, Step
from upf_bridge.model import N6Config, TrunkKind, VNet
from upf_bridge.state import Action, Diff, Link, OvsBridge, OvsPort, Resource, State, state_of


class SimulatedBackend(Reconciler[State]):
    def __init__(
        self,
        *,
        kind: TrunkKind = TrunkKind.OVS,
        owner: str = naming.DEFAULT_OWNER,
        ranges: naming.OwnedRanges | None = None,
        datapaths: Datapaths | None = None,
    ) -> None:
        default = naming.OVS_RANGES if kind == TrunkKind.OVS else naming.LINUX_RANGES
        super().__init__(owner=owner, ranges=ranges or default)
        self.kind = kind
        self._objects: State = {}
        # Kind ovs: what the simulated host can run (both, unless a test says less).
        if kind == TrunkKind.OVS and datapaths is None:
            datapaths = Datapaths(usable=(KERNEL, USERSPACE))
        self._datapaths = datapaths
        # A step for which this returns True fails, after the steps before it ran.
        self.fail_on: Callable[[Step], bool] | None = None

    def describe(self) -> str:
        return f"N6 backend: simulated {self.kind.value} (no host network changes)"

    def datapaths(self) -> Datapaths | None:
        return self._datapaths

    def attachment(self, vnet: VNet) -> Attachment:
        if self.kind == TrunkKind.OVS:
            return Attachment(vnet=vnet.key, kind="ovs", bridge=vnet.trunk, vlan=vnet.vlan)
        return Attachment(vnet=vnet.key, kind="bridge", bridge=naming.bridge_name(vnet))

    def _observe(self, config: N6Config) -> State:
        return dict(self._objects)

    def _state(self, observed: State) -> State:
        return observed

    def _desired(self, config: N6Config, observed: State) -> State:
        want: list[Resource] = []
        for trunk in config.trunks:
            vnets = config.vnets_on(trunk.name)
            if self.kind == TrunkKind.OVS:
                want.append(OvsBridge(trunk.name, self._datapath_of(trunk), owned=True))
                vlans = tuple(sorted(v.vlan for v in vnets))
                want += [OvsPort(p, trunk.name, owned=True, trunks=vlans) for p in trunk.ports]
            build = ovs.vnet_objects if self.kind == TrunkKind.OVS else linux.vnet_objects
            for vnet in vnets:
                want += build(vnet, self.ranges)
        return state_of(want)

    def _steps(self, diff: Diff) -> list[Step]:
        return [Step("memory", (c,)) for c in diff.changes]

    def _perform(self, step: Step) -> None:
        if self.fail_on is not None and self.fail_on(step):
            raise BackendError(f"simulated failure at: {step}", code="simulated_failure")
        for change in step.changes:
            res = change.resource
            if change.action == Action.DELETE:
                self._objects.pop((res.kind, res.key), None)
            else:
                self._objects[(res.kind, res.key)] = res

    def counters(self) -> dict[str, VNetCounters]:
        with self._lock:
            names = {
                res.vnet: res.name
                for res in self._objects.values()
                if isinstance(res, OvsPort | Link) and res.vnet
            }
        return {
            vnet: VNetCounters(vnet, (InterfaceCounters(name, 0, 0, 0, 0),))
            for vnet, name in names.items()
        }
