"""Node web UI (NiceGUI), its own process talking to the appliance API. Not built yet."""
