"""What every page is built with: the settings and the one appliance client."""

from __future__ import annotations

from dataclasses import dataclass

from ui.api import ApplianceApi
from ui.settings import UiSettings


@dataclass(frozen=True)
class Deps:
    settings: UiSettings
    api: ApplianceApi
