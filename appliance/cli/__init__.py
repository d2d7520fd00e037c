"""The appliance's ``towerbox`` command groups: the daemon and the node commands.

Each module is cheap to import (the CLI loads the one group a command line names);
the client, the config and the daemon are imported when a command runs.
"""
