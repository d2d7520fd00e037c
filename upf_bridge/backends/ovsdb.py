"""Open vSwitch's database through ``ovs-vsctl``.

Why ovs-vsctl and not an OVSDB library (python-ovs, ovsdbapp): every invocation is one
atomic OVSDB transaction, so a batch of port changes lands whole or not at all, which
is what the rollback needs; by default it waits until ovs-vswitchd has applied the
change (the internal port's kernel interface exists when it returns); its JSON output
is stable; and it is the tool installed with Open vSwitch and used by operators, so it
adds no dependency and no IDL schema to keep in step. Reading the whole Bridge, Port
and Interface tables takes one call of ~10 ms even with hundreds of ports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from towerbox_core import subp
from towerbox_core.errors import BackendError, BackendUnavailable

VSCTL = "ovs-vsctl"
TIMEOUT_S = 30

_BRIDGE_COLUMNS = "_uuid,name,datapath_type,external_ids,ports"
_PORT_COLUMNS = "_uuid,name,tag,trunks,external_ids,interfaces"
_IFACE_COLUMNS = "_uuid,name,type,mtu_request,mac,external_ids,error,ofport"


def vsctl(args: list[str], timeout_s: int = TIMEOUT_S) -> str:
    """Run ovs-vsctl with ``args`` (commands joined by "--") and return its stdout."""
    done = subp.run([VSCTL, f"--timeout={timeout_s}", *args], timeout=timeout_s + 5, check=False)
    if done.returncode != 0:
        stderr = done.stderr.strip()
        if "database connection failed" in stderr:
            raise BackendUnavailable(
                "Open vSwitch is not running (ovsdb-server does not answer): start it "
                "with 'ovs-ctl start'",
                code="ovs_unavailable",
            )
        raise BackendError(f"ovs-vsctl failed: {stderr[-500:]}", code="ovs_error")
    return done.stdout


def version() -> str:
    first = vsctl(["--version"]).splitlines()[0]
    return first.rsplit(" ", 1)[-1]


def _value(cell: Any) -> Any:
    """Decode OVSDB's JSON: ["set", [...]], ["map", [[k, v], ...]], ["uuid", u]."""
    if isinstance(cell, list) and len(cell) == 2 and isinstance(cell[0], str):
        tag, body = cell
        if tag == "set":
            return [_value(v) for v in body]
        if tag == "map":
            return {_value(k): _value(v) for k, v in body}
        if tag in ("uuid", "named-uuid"):
            return body
    return cell


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _optional_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class OvsdbBridge:
    name: str
    datapath_type: str
    external_ids: dict[str, str]
    port_uuids: tuple[str, ...]


@dataclass(frozen=True)
class OvsdbPort:
    uuid: str
    name: str
    tag: int | None
    trunks: tuple[int, ...]
    external_ids: dict[str, str]
    interface_uuids: tuple[str, ...]


@dataclass(frozen=True)
class OvsdbInterface:
    uuid: str
    name: str
    type: str
    mtu_request: int | None
    external_ids: dict[str, str]
    mac: str | None = None
    # What ovs-vswitchd made of it: its cause when it could not set it up, and the
    # OpenFlow port it got (none, or -1, when it failed).
    error: str | None = None
    ofport: int | None = None


@dataclass(frozen=True)
class OvsdbView:
    bridges: dict[str, OvsdbBridge]
    ports: dict[str, OvsdbPort]  # by name
    interfaces: dict[str, OvsdbInterface]  # by uuid
    port_bridge: dict[str, str] = field(default_factory=dict)  # port name -> bridge name

    def interface_of(self, port: OvsdbPort) -> OvsdbInterface | None:
        ifaces = [self.interfaces[u] for u in port.interface_uuids if u in self.interfaces]
        return ifaces[0] if len(ifaces) == 1 else None


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _interface(row: dict[str, Any]) -> OvsdbInterface:
    return OvsdbInterface(
        uuid=row["_uuid"],
        name=row["name"],
        type=row["type"],
        mtu_request=_optional_int(row["mtu_request"]),
        external_ids=dict(row["external_ids"]),
        mac=_optional_str(row.get("mac")),
        error=_optional_str(row.get("error")),
        ofport=_optional_int(row.get("ofport")),
    )


def _rows(doc: str) -> list[dict[str, Any]]:
    parsed = json.loads(doc)
    headings = parsed["headings"]
    return [dict(zip(headings, map(_value, row), strict=True)) for row in parsed["data"]]


def parse_view(output: str) -> OvsdbView:
    """Parse the three JSON documents ``read_view`` asks for, one per line."""
    docs = [line for line in output.splitlines() if line.strip()]
    if len(docs) != 3:
        raise BackendError("ovs-vsctl returned an unexpected listing", code="ovs_error")
    try:
        bridge_rows, port_rows, iface_rows = (_rows(d) for d in docs)
    except (ValueError, KeyError, TypeError) as err:
        raise BackendError(f"cannot parse ovs-vsctl output: {err}", code="ovs_error") from err
    ports = {
        r["name"]: OvsdbPort(
            uuid=r["_uuid"],
            name=r["name"],
            tag=_optional_int(r["tag"]) if not isinstance(r["tag"], list) else None,
            trunks=tuple(sorted(_as_list(r["trunks"]))),
            external_ids=dict(r["external_ids"]),
            interface_uuids=tuple(_as_list(r["interfaces"])),
        )
        for r in port_rows
    }
    interfaces = {r["_uuid"]: _interface(r) for r in iface_rows}
    bridges = {
        r["name"]: OvsdbBridge(
            name=r["name"],
            datapath_type=r["datapath_type"] or "system",
            external_ids=dict(r["external_ids"]),
            port_uuids=tuple(_as_list(r["ports"])),
        )
        for r in bridge_rows
    }
    by_uuid = {p.uuid: p.name for p in ports.values()}
    port_bridge = {
        by_uuid[u]: b.name for b in bridges.values() for u in b.port_uuids if u in by_uuid
    }
    return OvsdbView(bridges, ports, interfaces, port_bridge)


def read_view() -> OvsdbView:
    out = vsctl(
        [
            "--format=json",
            "--",
            f"--columns={_BRIDGE_COLUMNS}",
            "list",
            "Bridge",
            "--",
            f"--columns={_PORT_COLUMNS}",
            "list",
            "Port",
            "--",
            f"--columns={_IFACE_COLUMNS}",
            "list",
            "Interface",
        ]
    )
    return parse_view(out)


def parse_interfaces(output: str) -> dict[str, OvsdbInterface]:
    """Parse ``read_interfaces``'s JSON document: interfaces by name."""
    try:
        rows = _rows(output) if output.strip() else []
        return {r["name"]: _interface(r) for r in rows}
    except (ValueError, KeyError, TypeError) as err:
        raise BackendError(f"cannot parse ovs-vsctl output: {err}", code="ovs_error") from err


def read_interfaces(names: list[str]) -> dict[str, OvsdbInterface]:
    """The Interface rows of ``names`` that exist, by name."""
    if not names:
        return {}
    args = ["--format=json", f"--columns={_IFACE_COLUMNS}", "--if-exists", "list", "Interface"]
    return parse_interfaces(vsctl([*args, *names]))


def quote(value: str) -> str:
    """An OVSDB string for ovs-vsctl: JSON-quoted, so '/' or ':' cannot split it."""
    return json.dumps(value)


class Transaction:
    """ovs-vsctl commands that run as one OVSDB transaction."""

    def __init__(self) -> None:
        self._commands: list[list[str]] = []

    def add(self, *command: str) -> None:
        self._commands.append(list(command))

    def __bool__(self) -> bool:
        return bool(self._commands)

    def argv(self) -> list[str]:
        args: list[str] = []
        for command in self._commands:
            args += ["--", *command]
        return args

    def commit(self, timeout_s: int = TIMEOUT_S) -> None:
        if self._commands:
            vsctl(self.argv(), timeout_s)
