"""Types the route modules share."""

from __future__ import annotations

from litestar.di import NamedDependency

from registry.context import Registry

RegistryDep = NamedDependency[Registry]
