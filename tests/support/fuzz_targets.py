"""The APIs the fuzzer runs against, each a real process: the appliance daemon on
simulated backends, the registry with an operator's login, and the registry's sync
routes with the secret of an enrolled site."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.appliance import admin_password, make_config
from tests.support.daemon import running_daemon
from tests.support.fuzz import Credentials, FuzzReport, fuzz_api
from tests.support.registry_process import registry_env, serve

SYNC_ROUTES = (
    "POST /api/v1/sync/journal",
    "GET /api/v1/sync/journal/head",
    "POST /api/v1/sync/heartbeat",
    "GET /api/v1/sync/desired/{kind}",
    "GET /api/v1/sync/blobs/{sha256}",
)


@dataclass
class Target:
    api: str
    url: str
    credentials: Credentials
    only: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    schema_reader: Credentials | None = None

    def fuzz(self, cases: int, seed: int | None = None, scenarios: int = 0) -> FuzzReport:
        return fuzz_api(
            self.api,
            self.url,
            self.credentials,
            cases,
            seed,
            skip=self.skip,
            only=self.only,
            schema_reader=self.schema_reader,
            scenarios=scenarios,
        )


def _login(url: str, password: str) -> Credentials:
    def make() -> dict[str, str]:
        resp = httpx.post(
            f"{url}/api/v1/auth/login", json={"username": "admin", "password": password}
        )
        assert resp.status_code == 201, resp.text
        return {"Authorization": f"Bearer {resp.json()['token']}"}

    return Credentials(make)


@contextmanager
def appliance_target(tmp: Path) -> Iterator[Target]:
    cfg = make_config(tmp)
    extra = {
        "TOWERBOX_GPU_BACKEND": "simulated",
        "TOWERBOX_N6_BACKEND": "simulated",
        # The fuzzer is one client sending as fast as it can: the rate limit has its
        # own tests (test_api_hostile_clients), here it would answer nearly all 429.
        "TOWERBOX_API_RATE_PER_S": "1000000",
        "TOWERBOX_API_RATE_BURST": "1000000",
    }
    with running_daemon(cfg, tmp, extra_env=extra) as daemon:
        daemon.wait_notify("READY=1")
        # The event stream never ends by design (keep-alives every 15 s): a case would
        # wait on it forever. Its own tests read it (test_event_stream).
        streams = ("GET /api/v1/events",)
        yield Target("appliance", daemon.url, _login(daemon.url, admin_password(cfg)), skip=streams)


@contextmanager
def registry_targets(tmp: Path) -> Iterator[tuple[Target, Target]]:
    """The registry's operator API, and its sync routes as an enrolled site calls them."""
    url, env = registry_env(tmp)
    with serve(env, url, tmp / "registry.log"):
        password = (tmp / "registry" / "admin-password").read_text().strip()
        # Its own login, renewed when needed: a case may revoke any operator token.
        operator = _login(url, password)
        numbers = itertools.count(1)

        def enrolled_site() -> dict[str, str]:
            # A new site each time: a case may have deleted the one in use.
            made = httpx.post(
                f"{url}/api/v1/sites",
                json={"name": f"fuzz-{next(numbers)}"},
                headers=operator.renew(),
            )
            assert made.status_code == 201, made.text
            token = made.json()["enrollment_token"]
            enrolled = httpx.post(f"{url}/api/v1/enroll", json={"token": token, "hostname": "fz"})
            assert enrolled.status_code == 200, enrolled.text
            return {"Authorization": f"Bearer {enrolled.json()['secret']}"}

        yield (
            Target("registry", url, _login(url, password), skip=SYNC_ROUTES),
            Target(
                "registry-sync",
                url,
                Credentials(enrolled_site),
                only=SYNC_ROUTES,
                schema_reader=operator,  # a site secret works only on /api/v1/sync/*
            ),
        )
