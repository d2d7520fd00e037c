"""Central fleet registry. Not built yet."""
