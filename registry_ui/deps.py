"""What every page is built with: the settings and the one registry client."""

from __future__ import annotations

from dataclasses import dataclass

from registry_ui.api import RegistryApi
from registry_ui.settings import RegistryUiSettings


@dataclass(frozen=True)
class Deps:
    settings: RegistryUiSettings
    api: RegistryApi
