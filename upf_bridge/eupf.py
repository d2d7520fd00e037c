"""A read-only client of the eUPF REST API: PFCP associations, sessions, UE addresses.

Endpoints (eUPF ``docs/api.md``, served by its Gin API under ``/api/v1``):

- ``GET /pfcp_associations``: ``{node id: {"ID", "Addr", "NextSessionID"}}``
- ``GET /pfcp_sessions`` (optionally ``?ip=<UE address>``): a list of sessions, each
  ``{"LocalSEID", "RemoteSEID", "IMSI", "MSISDN", "PDRs": {id: {"PdrID", "Teid",
  "Ipv4", "NetworkInstance", ...}}, ...}``; Go writes an empty list as ``null``
- ``GET /uplink_pdr_map/<id>``: ``{"id", "outer_header_removal", "far_id", "qer_id"}``

Sessions are matched to tenant VNets by UE address (``sessions_by_vnet``). The
client is synchronous, like the backends: the appliance calls it from a worker
thread. Connection failures become ``BackendUnavailable``; bad answers ``BackendError``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import AddressValueError, IPv4Address
from types import TracebackType
from typing import Any

import httpx

from towerbox_core.errors import BackendError, BackendUnavailable
from upf_bridge.model import VNet

API_PREFIX = "/api/v1"
DEFAULT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class PfcpAssociation:
    node_id: str
    address: str
    next_session_id: int


@dataclass(frozen=True)
class Pdr:
    pdr_id: int
    teid: int
    ue_ipv4: IPv4Address | None
    network_instance: str


@dataclass(frozen=True)
class PfcpSession:
    local_seid: int
    remote_seid: int
    imsi: str
    msisdn: str
    pdrs: tuple[Pdr, ...]

    @property
    def ue_addresses(self) -> tuple[IPv4Address, ...]:
        return tuple(sorted({p.ue_ipv4 for p in self.pdrs if p.ue_ipv4 is not None}))


@dataclass(frozen=True)
class UplinkPdr:
    pdr_id: int
    outer_header_removal: int
    far_id: int
    qer_id: int


def _bad(what: str, detail: str) -> BackendError:
    return BackendError(f"eUPF answered {what} with {detail}", code="eupf_bad_response")


def _int(doc: dict[str, Any], key: str, what: str) -> int:
    value = doc.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad(what, f"a non-integer {key}")
    return value


def _ipv4(value: object) -> IPv4Address | None:
    # Go writes an unset net.IP as "" or null; a v6 or odd value is not a UE IPv4.
    if not isinstance(value, str) or not value:
        return None
    try:
        return IPv4Address(value)
    except AddressValueError:
        return None


def _pdr(doc: object, what: str) -> Pdr:
    if not isinstance(doc, dict):
        raise _bad(what, "a PDR that is not an object")
    return Pdr(
        pdr_id=_int(doc, "PdrID", what),
        teid=_int(doc, "Teid", what),
        ue_ipv4=_ipv4(doc.get("Ipv4")),
        network_instance=str(doc.get("NetworkInstance") or ""),
    )


def _session(doc: object, what: str) -> PfcpSession:
    if not isinstance(doc, dict):
        raise _bad(what, "a session that is not an object")
    pdrs = doc.get("PDRs") or {}
    items = pdrs.values() if isinstance(pdrs, dict) else pdrs
    if not isinstance(items, Iterable):
        raise _bad(what, "PDRs that are neither a map nor a list")
    return PfcpSession(
        local_seid=_int(doc, "LocalSEID", what),
        remote_seid=_int(doc, "RemoteSEID", what),
        imsi=str(doc.get("IMSI") or ""),
        msisdn=str(doc.get("MSISDN") or ""),
        pdrs=tuple(_pdr(p, what) for p in items),
    )


class EupfClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + API_PREFIX, timeout=timeout, transport=transport
        )

    def __enter__(self) -> EupfClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        try:
            response = self._http.get(path, params=params)
        except httpx.TransportError as err:
            raise BackendUnavailable(
                f"eUPF API at {self._http.base_url} does not answer: {err}",
                code="eupf_unreachable",
            ) from err
        if response.status_code != httpx.codes.OK:
            raise BackendError(
                f"eUPF API GET {path} failed with HTTP {response.status_code}: "
                f"{response.text[:200]}",
                code="eupf_error",
                status_code=response.status_code,
            )
        try:
            return response.json()
        except ValueError as err:
            raise _bad(f"GET {path}", "a body that is not JSON") from err

    def associations(self) -> list[PfcpAssociation]:
        what = "GET /pfcp_associations"
        doc = self._get("/pfcp_associations") or {}
        if not isinstance(doc, dict):
            raise _bad(what, "something other than a map of associations")
        result = []
        for node_id, assoc in sorted(doc.items()):
            if not isinstance(assoc, dict):
                raise _bad(what, "an association that is not an object")
            result.append(
                PfcpAssociation(
                    node_id=str(assoc.get("ID") or node_id),
                    address=str(assoc.get("Addr") or ""),
                    next_session_id=_int(assoc, "NextSessionID", what),
                )
            )
        return result

    def sessions(self) -> list[PfcpSession]:
        doc = self._get("/pfcp_sessions") or []
        if not isinstance(doc, list):
            raise _bad("GET /pfcp_sessions", "something other than a list")
        return [_session(s, "GET /pfcp_sessions") for s in doc]

    def session_of(self, ue_address: IPv4Address) -> PfcpSession | None:
        """The session holding ``ue_address``, or None."""
        doc = self._get("/pfcp_sessions", {"ip": str(ue_address)}) or []
        if not isinstance(doc, list):
            raise _bad("GET /pfcp_sessions?ip=", "something other than a list")
        found = [_session(s, "GET /pfcp_sessions?ip=") for s in doc]
        return found[0] if found else None

    def ue_addresses(self) -> dict[IPv4Address, PfcpSession]:
        return {ip: s for s in self.sessions() for ip in s.ue_addresses}

    def uplink_pdr(self, pdr_id: int) -> UplinkPdr:
        what = f"GET /uplink_pdr_map/{pdr_id}"
        doc = self._get(f"/uplink_pdr_map/{int(pdr_id)}")
        if not isinstance(doc, dict):
            raise _bad(what, "something other than an object")
        return UplinkPdr(
            pdr_id=_int(doc, "id", what),
            outer_header_removal=_int(doc, "outer_header_removal", what),
            far_id=_int(doc, "far_id", what),
            qer_id=_int(doc, "qer_id", what),
        )


def sessions_by_vnet(
    sessions: Iterable[PfcpSession], vnets: Iterable[VNet]
) -> dict[str, list[PfcpSession]]:
    """Sessions grouped by the VNet whose UE pool holds their address ("tenant/name")."""
    pools = [(pool, v.key) for v in vnets for pool in v.ue_pools]
    result: dict[str, list[PfcpSession]] = {}
    for session in sessions:
        keys = {key for ip in session.ue_addresses for pool, key in pools if ip in pool}
        for key in sorted(keys):
            result.setdefault(key, []).append(session)
    return result
