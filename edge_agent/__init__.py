"""The edge agent: the node's only link to the fleet registry, run unprivileged.

It ships the appliance's journal up in bounded batches, keeps heartbeats flowing,
pulls desired-state documents down and hands them to the appliance, and tells the
appliance how the WAN is doing. The node never depends on it.
"""

from towerbox_core import __version__

__all__ = ["__version__"]
