"""The ``towerbox`` command line: a thin entry point over the packages' command groups."""
