"""N6 handoff: per-tenant VLANs, bridges and UE-pool steering on the N6 trunk.

- ``model``: trunks and tenant VNets, and ``validate`` (pure); ``parse`` reads them
  from untrusted documents; ``naming`` and ``policy`` derive names, tables and rules.
- ``backends``: ``NetBackend``, its Open vSwitch, Linux and simulated implementations,
  which reconcile the node by diff (``state``), all or nothing.
- ``upf_config``: Open5GS ``upf.yaml`` session entries; ``eupf``: eUPF REST client.
"""
