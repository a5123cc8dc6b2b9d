"""Assess pages before reading them: features, text layer, and the route that follows.

At submit the inspector process assesses each selected page on a thumbnail (the long side at the
scoring size, a few tens of milliseconds) so that the credits reserved are exact; the route is
stored with the page and the worker reads by it. `ocr-gateway ocr` and the benchmark assess the
full render instead, with the same functions.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from gateway.config import AUTO, Settings
from gateway.work.documents import DocumentKind, Thumbnail, read_text_layer, render_thumbnail
from providers.factory import is_local
from providers.types import PageImage, quad_bounds
from router.policy import TEXT_LAYER, Mode, PageRoute, TextLayerStats, Tier, choose_route
from scoring.features import SCORING_SIDE, compute_features, ink_coverage
from scoring.score import real_text_ratio


def text_layer_stats(path: Path, index: int, page: PageImage) -> TextLayerStats | None:
    layer = read_text_layer(path, index, page.dpi)
    if layer is None:
        return None
    boxes = [quad_bounds(line.quad) for line in layer.lines]
    return TextLayerStats(real_ratio=round(real_text_ratio(layer.text), 3),
                          coverage=round(ink_coverage(page.pixels, boxes), 3),
                          image_cover=layer.image_cover)


def local_providers(settings: Settings) -> set[str]:
    return {name for name, config in settings.providers.items() if is_local(config)}


def route_page(page: PageImage, *, settings: Settings, path: Path, kind: DocumentKind,
               reading_scale: float = 1.0, mode: Mode = Mode.AUTO,
               available: set[str] | None = None, allow_remote: bool = True) -> PageRoute:
    """The route of a rendered page; `reading_scale` is how much larger it will be read.
    `available`: providers configured and healthy (default: the local ones)."""
    if settings.pipeline.provider != AUTO:
        forced = settings.pipeline.provider
        return PageRoute(tier=Tier.SIMPLE, credits=settings.credits.credits_per_page,
                         providers=[forced], complexity_score=0.0, escalate=False,
                         best_of_chain=False,
                         reason=f"{forced} reads every page (pipeline.provider)")
    features = compute_features(page.pixels, page.dpi * reading_scale, reading_scale)
    stats = (text_layer_stats(path, page.page_number - 1, page)
             if kind == DocumentKind.PDF else None)
    route = choose_route(features, settings.routing,
                         available=local_providers(settings) if available is None else available,
                         mode=mode, text_layer=stats)
    forbidden = {n for n, c in settings.providers.items() if not is_local(c)} \
        & set(settings.routing.tiers[route.tier.value].providers)
    if not allow_remote and forbidden and route.providers != [TEXT_LAYER]:
        route = msgspec.structs.replace(route, reason=(
            f"{route.reason}; remote providers ({', '.join(sorted(forbidden))}) are not allowed "
            "for this request or tenant (allow_remote: false): read locally"))
    return route


def assess_page(path: Path, kind: DocumentKind, page_number: int, settings: Settings,
                mode: Mode = Mode.AUTO, available: set[str] | None = None,
                allow_remote: bool = True, thumbnail: Thumbnail | None = None) -> PageRoute:
    """Submit-time assessment, on a thumbnail of the page (rendered here unless given)."""
    if thumbnail is None:
        thumbnail = render_thumbnail(path, kind, page_number - 1, settings.rendering.dpi,
                                     settings.limits.max_pixels_per_page, SCORING_SIDE)
    return route_page(thumbnail.image, settings=settings, path=path, kind=kind,
                      reading_scale=thumbnail.reading_scale, mode=mode, available=available,
                      allow_remote=allow_remote)
