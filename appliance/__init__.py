"""Towerbox appliance daemon: owns the node (VMs, GPUs, N6 paths) and its state."""
