"""The node API's typed bodies: request and response structs per route group.

The appliance's routes take and return these, Litestar documents them in OpenAPI,
and a client (the CLI, the UI, the agent) can decode the same structs. They import
only msgspec, the standard library and the rest of the core.
"""
