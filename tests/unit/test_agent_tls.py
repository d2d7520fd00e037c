"""The agent verifies the registry's TLS against the configured CA, and only that CA."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from edge_agent.config import load_agent_config
from edge_agent.enroll import enroll
from edge_agent.errors import Unreachable
from edge_agent.state import load_enrollment
from tests.support.tls import openssl, self_signed


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """An HTTPS endpoint for 127.0.0.1 signed by a test CA; yields URL, CA, other CA."""
    ca, ca_key = self_signed(tmp_path, "test-ca", cn="test-ca", ip=None)
    other_ca, _ = self_signed(tmp_path, "other-ca", cn="other-ca", ip=None)
    key, csr, cert = tmp_path / "srv.key", tmp_path / "srv.csr", tmp_path / "srv.pem"
    ext = tmp_path / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=registry",
        "-keyout",
        str(key),
        "-out",
        str(csr),
    )
    openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        str(ext),
        "-out",
        str(cert),
    )

    class Enroll(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            body = json.loads(self.rfile.read(length))
            answer = json.dumps({"site": "s1", "secret": "tbs_" + body["token"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Enroll)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", ca, other_ca
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_enroll_trusts_the_given_ca_only(
    tls_server: tuple[str, Path, Path], tmp_path: Path
) -> None:
    url, ca, other_ca = tls_server
    cfg = load_agent_config(
        tmp_path / "absent.toml", {"TOWERBOX_AGENT_STATE_DIR": str(tmp_path / "s")}
    )
    for wrong in ("", str(other_ca)):  # the system store, then another CA
        with pytest.raises(Unreachable, match="CERTIFICATE_VERIFY_FAILED"):
            enroll(cfg, url, "tbe_x", wrong)
    assert not cfg.state_file.exists()
    done = enroll(cfg, url, "tbe_abc", str(ca))
    assert (done.site, done.secret, done.ca_file) == ("s1", "tbs_tbe_abc", str(ca))
    assert load_enrollment(cfg.state_file) == done
    assert cfg.state_file.stat().st_mode & 0o777 == 0o600


def test_the_sync_client_trusts_the_given_ca_only(tls_server: tuple[str, Path, Path]) -> None:
    """The command lines' client (``http.client`` underneath) verifies like the agent."""
    from towerbox_core.errors import TowerboxError
    from towerbox_core.sync_client import ApiClient

    url, ca, other_ca = tls_server
    for wrong in ("", str(other_ca)):
        client = ApiClient(url, ca_file=wrong)
        with client, pytest.raises(TowerboxError, match="CERTIFICATE_VERIFY_FAILED") as failed:
            client.request("POST", "/api/v1/enroll", json={"token": "t"})
        assert failed.value.code == "appliance_unreachable"
        assert url in failed.value.message
    with ApiClient(url + "/", ca_file=str(ca)) as client:
        answer = client.request("POST", "/api/v1/enroll", json={"token": "t"})
    assert answer == {"site": "s1", "secret": "tbs_t"}
