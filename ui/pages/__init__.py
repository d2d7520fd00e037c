"""One module per page; each registers its routes against the shared Deps."""
