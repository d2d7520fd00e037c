"""Types the route modules share: the injected appliance and the authed request."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency

from appliance.context import Appliance
from appliance.services.auth import Principal

ApplianceDep = NamedDependency[Appliance]
AuthedRequest = Request[Principal, str, Any]
