"""N6 handoff: per-tenant VLANs, bridges and UE-pool steering. Not built yet."""
