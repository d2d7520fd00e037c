"""Central fleet registry: sites, their journals and observed objects, desired state.

Litestar + peewee over SQLite (WAL) or PostgreSQL; stateless workers over one
database. ``towerbox registry serve`` runs it; docs/sync-protocol.md is its contract.
"""
