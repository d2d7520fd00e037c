"""Multi-VM services: the template a tenant deploys and what the node answers.

A service is one object of a tenant: roles, each a number of replica VMs made from
one catalog entry, started wave by wave in ``after`` order, each replica gated by
its role's health check. The rules (names, order, cycles) are in
``towerbox_core.service_rules``; whether a catalog entry or VNet exists is the node's
to check.
"""

from __future__ import annotations

from typing import Literal

import msgspec

MAX_REPLICAS = 32
HealthKind = Literal["serial", "tcp", "agent"]
# A value for a catalog entry's cloud-init template, of the type the entry declares.
ValueInput = str | int | bool | list[str]


# The role of a service deployed from one catalog entry (the UI's and the CLI's
# ``--entry``): its replicas are <service>-app-<n>.
SINGLE_ROLE = "app"


class HealthCheck(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a replica proves it is up.

    ``serial``: ``marker`` appears in the VM's serial console log; ``tcp``: a TCP
    connection to ``port`` on the VM's address succeeds; ``agent``: the QEMU guest
    agent answers a ping. ``timeout_s`` bounds the wait for a new replica.
    """

    kind: HealthKind
    marker: str | None = None
    port: int | None = None
    timeout_s: float = 120.0


class SpecOverrides(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a role may change of its catalog entry's spec."""

    vcpus: int | None = None
    memory_mib: int | None = None


class RoleTemplate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    catalog: str  # a catalog entry's name
    count: int = 1
    values: dict[str, ValueInput] = {}
    gpu: str | None = None  # a MIG profile ("1g.10gb"), or none
    vnets: list[str] = []  # VNets of the service's tenant each replica joins
    after: list[str] = []  # roles that must be healthy before this one starts
    health: HealthCheck | None = None
    spec: SpecOverrides = SpecOverrides()
    # The catalog entry's version the role's replicas are made from. A template may
    # name it (a node whose catalog holds another version refuses); the node records
    # the version it deployed, and a replica is never made from another one.
    version: str | None = None


class ServiceTemplate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    description: str = ""
    roles: list[RoleTemplate] = []


class ServiceDeployRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """POST /api/v1/services: a template inline (``service``) or by file name
    (``template``: images/services/<template>.toml), optionally renamed."""

    service: ServiceTemplate | None = None
    template: str | None = None
    name: str | None = None  # the deployed service's name; default the template's
    tenant: str | None = None  # default: the caller's tenant
    values: dict[str, dict[str, ValueInput]] = {}  # role -> values on top of the template's


class ScaleRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    count: int


class UpdateRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """POST /api/v1/services/{name}/update: a new catalog entry, values or spec for
    one role, rolled out one replica group at a time."""

    role: str
    catalog: str | None = None
    # The entry's version to move to: the node's catalog must hold it. Without it, the
    # version the catalog holds now (an update with nothing else moves a role whose
    # entry has a new version onto it).
    version: str | None = None
    values: dict[str, ValueInput] | None = None  # replaces the role's values when given
    # With ``values``: only the values given change; the others keep their setting
    # where the role's (new) catalog entry still declares them. What a form sends,
    # which cannot show a secret to send it back.
    merge_values: bool = False
    spec: SpecOverrides | None = None
    max_surge: int = 1
    max_unavailable: int = 0
    dry_run: bool = False


class PlanStep(msgspec.Struct, frozen=True):
    action: Literal["create", "await_health", "delete"]
    replica: str  # "new-0" (the first new replica) or "old-0" (the first old one)


class RolloutPlan(msgspec.Struct, frozen=True):
    replicas: int
    max_surge: int  # as applied, after the GPU rule
    max_unavailable: int
    min_healthy: int  # the fewest healthy replicas the plan allows at any moment
    steps: list[PlanStep]
    note: str = ""


class ReplicaView(msgspec.Struct, frozen=True):
    vm: str
    generation: int  # which of the role's configurations made it (0: the first)
    state: str  # libvirt's, or "missing"
    healthy: bool
    detail: str  # what the health probe saw


class RoleView(msgspec.Struct, frozen=True):
    name: str
    catalog: str
    count: int
    healthy: int
    health: str  # the check, in words
    replicas: list[ReplicaView]
    # The role's values as set; a secret one as "(secret)", never its value.
    values: dict[str, ValueInput] = {}
    version: str | None = None  # of the catalog entry its replicas are made from
    # The version the node's catalog holds now, when it is not ``version``: an update
    # moves the role onto it, and the role does not scale up until then.
    catalog_version: str | None = None


class ServiceProgress(msgspec.Struct, frozen=True):
    operation: str  # deploy, scale, update, remove
    done: bool
    steps: list[str]  # what happened so far, in order
    # Ended without doing what it was asked (rolled back, stopped, or crashed): the
    # service's message says why. A waiting client exits non-zero on it.
    failed: bool = False


class ServiceView(msgspec.Struct, frozen=True):
    name: str
    tenant: str
    state: str  # deploying, ready, failed, updating, scaling or removing
    message: str  # why it failed, or what it is doing
    roles: list[RoleView]
    progress: ServiceProgress | None = None
    # "registry": a desired services document from the fleet registry made it, and
    # its next version sets the service back to what it says; "": made on this node.
    managed_by: str = ""


class ServiceUpdateAnswer(msgspec.Struct, frozen=True):
    service: str
    role: str
    dry_run: bool
    plan: RolloutPlan


class DesiredServiceEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One service of a ``services`` desired document, keyed there by its name."""

    tenant: str
    service: ServiceTemplate | None = None  # the template inline (its name is the key's)
    template: str | None = None  # or a template file's name on the node
    values: dict[str, dict[str, ValueInput]] = {}  # role -> values on top of the template's

    def request(self, name: str) -> ServiceDeployRequest:
        return ServiceDeployRequest(
            service=self.service,
            template=self.template,
            name=name,
            tenant=self.tenant,
            values=self.values,
        )


class ServicesDocument(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The ``services`` desired-state kind: services of tenants, by name."""

    services: dict[str, DesiredServiceEntry] = {}
