"""The API's typed request and response structs, shared by servers and clients.

The appliance's routes (``accounts``, ``vms``, ``gpus``, ``n6``, ``node``, ``sync``,
``artifacts``) and the registry's (``fleet``) take and return these; Litestar
documents them in OpenAPI, and a client (the CLI, the UI, the agent) decodes the same
structs. They import only msgspec, the standard library and the rest of the core.
"""
