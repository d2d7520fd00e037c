"""Unprivileged edge agent syncing the node with the fleet registry. Not built yet."""
