"""The node's "top": VMs and GPU slices by current use, from the last sweep."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import QueryParameter

from appliance.api.deps import ApplianceDep, AuthedRequest
from towerbox_core.api.top import NodeTop
from towerbox_core.openapi_problems import problem_responses


class TopController(Controller):
    path = "/api/v1/top"
    tags = ("node",)

    @get("/", sync_to_thread=True, responses=problem_responses(422))
    def top(
        self,
        request: AuthedRequest,
        appliance: ApplianceDep,
        sort: Annotated[str, QueryParameter(max_length=16)] = "cpu",
    ) -> NodeTop:
        """The VMs and GPU slices the caller may see, busiest first by ``sort`` (cpu,
        memory, net, disk, gpu; or name): figures from the monitor's last sweep, rates
        over its last two, with no call to libvirt or the GPUs."""
        return appliance.top.top(request.user, sort)
