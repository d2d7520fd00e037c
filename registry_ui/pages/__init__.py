"""The registry UI's pages; each module registers its routes with ``register(deps)``."""
