"""The fleet registry's web UI: a NiceGUI process that talks only to the registry API."""
