"""The API's typed request and response structs, shared by servers and clients."""
