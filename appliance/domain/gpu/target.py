"""What an operator, a schedule or the configuration asks a GPU to become.

The request is a wire shape of the node API (``towerbox_core.api.gpus``); the
domain uses it as it comes.
"""

from __future__ import annotations

from towerbox_core.api.gpus import LayoutRequest

__all__ = ["LayoutRequest"]
