"""The registry's HTTP API (Litestar)."""
