"""Node web UI (NiceGUI): its own process, talking only to the appliance API on loopback."""
