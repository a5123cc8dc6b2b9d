"""Compatible API surfaces: other OCR services' APIs served over the same core (tenants, keys,
credits, routing, jobs, retention), each under its own path prefix, so that a client written for
one of them works by changing only its base URL.

One module per surface (thin handlers; the mapping from the core's records onto the surface's
fields in pure functions), each described by a `Surface` (`base.py`). `mount` reads
`compat.<name>.enabled` and `.prefix`, builds the enabled surfaces' routers and refuses, before
the gateway starts, a prefix that would put one of their routes on a path and method another
route already serves (an empty prefix mounts a surface at the root when nothing collides).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager

from litestar import Litestar, Router
from litestar.openapi.spec import SecurityScheme, Tag
from litestar.routes import HTTPRoute

from gateway.api.compat.base import Surface
from gateway.api.compat.jobapi import SURFACE as JOBAPI
from gateway.api.compat.ocrv2 import SURFACE as OCRV2
from gateway.api.compat.solver import SURFACE as SOLVER
from gateway.api.compat.sotaocr import SURFACE as SOTAOCR
from gateway.compat_config import SurfaceSettings
from gateway.config import ConfigError, Settings

SURFACES: tuple[Surface, ...] = (SOTAOCR, JOBAPI, SOLVER, OCRV2)
_PARAMETER = re.compile(r"\{[^}]*\}")
_IMPLICIT = frozenset({"OPTIONS", "HEAD"})


@dataclasses.dataclass(frozen=True)
class Mounted:
    routers: list[Router]
    security_schemes: dict[str, SecurityScheme]
    tags: list[Tag]
    lifespans: list[Callable[[Litestar], AbstractAsyncContextManager[None]]]


def route_keys(routes: Iterable[object]) -> set[tuple[str, str]]:
    """(method, path with its parameters unnamed) of every HTTP route: two routes with the same
    key would answer the same requests."""
    return {
        (method, _PARAMETER.sub("{}", route.path_format))
        for route in routes
        if isinstance(route, HTTPRoute)
        for method in route.methods - _IMPLICIT
    }


def surface_settings(settings: Settings, name: str) -> SurfaceSettings:
    found = getattr(settings.compat, name)
    assert isinstance(found, SurfaceSettings)
    return found


def mount(settings: Settings, native_handlers: list[object]) -> Mounted:
    """The routers of the enabled surfaces; ConfigError when a route would collide."""
    owners = dict.fromkeys(
        route_keys(Router(path="/", route_handlers=native_handlers).routes),  # type: ignore[arg-type]
        "the native API",
    )
    mounted = Mounted(routers=[], security_schemes={}, tags=[], lifespans=[])
    for surface in SURFACES:
        config = surface_settings(settings, surface.name)
        if not config.enabled:
            continue
        router = surface.build(settings, config.prefix)
        for key in sorted(route_keys(router.routes)):
            if key in owners:
                method, path = key
                raise ConfigError(
                    f"compat.{surface.name}.prefix {config.prefix!r}: {method} {path} is "
                    f"already served by {owners[key]}; choose another prefix (or disable one)"
                )
            owners[key] = f"compat.{surface.name}"
        mounted.routers.append(router)
        mounted.security_schemes.update(surface.security_schemes)
        mounted.tags.append(Tag(name=surface.tag, description=surface.description))
        if surface.lifespan is not None:
            mounted.lifespans.append(surface.lifespan)
    return mounted
