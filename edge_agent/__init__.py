"""The edge agent: the node's only link to the fleet registry, run unprivileged.

It ships the appliance's journal up in bounded batches, keeps heartbeats flowing,
pulls desired-state documents down and hands them to the appliance, and tells the
appliance how the WAN is doing. The node never depends on it.
"""

__version__ = "0.1.0"
