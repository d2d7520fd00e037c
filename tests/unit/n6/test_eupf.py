"""The eUPF client against a stand-in of eUPF's REST API on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address, IPv4Network
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.unit.n6.factories import vnet
from towerbox_core.errors import BackendError, BackendUnavailable
from upf_bridge.eupf import EupfClient, sessions_by_vnet


def _session(seid: int, imsi: str, ue: str, teid: int) -> dict[str, Any]:
    # The shape eUPF's Gin handler writes for core.Session (no JSON tags: Go names).
    return {
        "LocalSEID": seid,
        "RemoteSEID": seid + 1000,
        "IMSI": imsi,
        "MSISDN": "",
        "PDRs": {
            "1": {
                "PdrID": 1,
                "PdrInfo": {"FarId": 1, "QerId": 1},
                "Teid": teid,
                "Ipv4": "",
                "Ipv6": None,
                "NetworkInstance": "access",
                "Allocated": False,
            },
            "2": {
                "PdrID": 2,
                "PdrInfo": {"FarId": 2, "QerId": 1},
                "Teid": 0,
                "Ipv4": ue,
                "Ipv6": None,
                "NetworkInstance": "internet",
                "Allocated": True,
            },
        },
        "FARs": {},
        "QERs": {},
        "URRs": {},
    }


SESSIONS = [
    _session(2, "001010000000001", "10.45.1.7", 11),
    _session(3, "001010000000002", "10.45.2.9", 12),
]
ASSOCIATIONS = {
    "10.100.200.2": {"ID": "smf.local", "Addr": "10.100.200.2", "NextSessionID": 4},
}


class _EupfStandIn(BaseHTTPRequestHandler):
    empty = False

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        body: object
        if url.path == "/api/v1/pfcp_associations":
            body = ASSOCIATIONS
        elif url.path == "/api/v1/pfcp_sessions":
            sessions = [] if self.empty else SESSIONS
            if "ip" in query:
                wanted = query["ip"][0]
                sessions = [
                    s for s in sessions if any(p["Ipv4"] == wanted for p in s["PDRs"].values())
                ]
            body = sessions or None  # Go writes an empty slice as null
        elif url.path.startswith("/api/v1/uplink_pdr_map/"):
            pdr_id = int(url.path.rsplit("/", 1)[1])
            body = {"id": pdr_id, "outer_header_removal": 0, "far_id": 5, "qer_id": 6}
        elif url.path == "/api/v1/broken":
            self._reply(200, b"{not json")
            return
        else:
            self._reply(404, b'{"error": "not found"}')
            return
        self._reply(200, json.dumps(body).encode())

    def _reply(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def eupf_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EupfStandIn)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_associations(eupf_url: str) -> None:
    with EupfClient(eupf_url) as client:
        (assoc,) = client.associations()
    assert assoc.node_id == "smf.local"
    assert assoc.address == "10.100.200.2"
    assert assoc.next_session_id == 4


def test_sessions_and_their_ue_addresses(eupf_url: str) -> None:
    with EupfClient(eupf_url) as client:
        sessions = client.sessions()
        by_ue = client.ue_addresses()
        found = client.session_of(IPv4Address("10.45.2.9"))
        missing = client.session_of(IPv4Address("10.45.3.1"))
        pdr = client.uplink_pdr(1)
    assert [s.imsi for s in sessions] == ["001010000000001", "001010000000002"]
    assert sessions[0].ue_addresses == (IPv4Address("10.45.1.7"),)
    assert sessions[0].pdrs[0].teid == 11
    assert set(by_ue) == {IPv4Address("10.45.1.7"), IPv4Address("10.45.2.9")}
    assert found is not None
    assert found.local_seid == 3
    assert missing is None
    assert (pdr.pdr_id, pdr.far_id, pdr.qer_id) == (1, 5, 6)


def test_sessions_map_to_the_vnet_whose_pool_holds_the_ue(eupf_url: str) -> None:
    vnets = [
        vnet(ue_pools=(IPv4Network("10.45.1.0/24"),)),
        vnet("beta", "b", vlan=200, n=2),
    ]
    with EupfClient(eupf_url) as client:
        grouped = sessions_by_vnet(client.sessions(), vnets)
    assert {k: [s.imsi for s in v] for k, v in grouped.items()} == {
        "acme/a": ["001010000000001"],
        "beta/b": ["001010000000002"],
    }


def test_no_sessions_is_an_empty_list(eupf_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_EupfStandIn, "empty", True)
    with EupfClient(eupf_url) as client:
        assert client.sessions() == []


def test_http_errors_and_bad_bodies_become_backend_errors(eupf_url: str) -> None:
    with EupfClient(eupf_url) as client:
        with pytest.raises(BackendError) as err:
            client._get("/nowhere")
        assert err.value.code == "eupf_error"
        with pytest.raises(BackendError) as err:
            client._get("/broken")
        assert err.value.code == "eupf_bad_response"


def test_an_eupf_that_does_not_answer_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port any more.
    with (
        EupfClient(f"http://127.0.0.1:{port}", timeout=2) as client,
        pytest.raises(BackendUnavailable) as err,
    ):
        client.sessions()
    assert err.value.code == "eupf_unreachable"
