"""Measure pages before reading them: the evidence `router.plan.plan_document` decides on.

At submit the inspector process measures each selected page on a thumbnail (the long side at
the scoring size, a few tens of milliseconds) so that the credits reserved are exact; the plan
is made once for the document and each page's route is stored with it. `ocr-gateway ocr` and
the benchmark measure the full render instead, with the same functions.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np

from gateway.config import AUTO, Settings
from gateway.work.documents import DocumentKind, Thumbnail, render_thumbnail
from gateway.work.textlayer import read_text_layer
from providers.factory import is_local
from providers.types import PageImage, quad_bounds
from router.plan import PageEvidence, PlanContext, plan_document
from router.policy import Mode, PageRoute, TextLayerStats, Tier
from scoring.features import SCORING_SIDE, compute_features, ink_coverage
from scoring.score import real_text_ratio


def text_layer_stats(path: Path, index: int, page: PageImage) -> TextLayerStats | None:
    layer = read_text_layer(path, index, page.dpi, check_glyphs=True)
    if layer is None:
        return None
    boxes = [quad_bounds(line.quad) for line in layer.lines]
    return TextLayerStats(
        real_ratio=round(real_text_ratio(layer.text), 3),
        coverage=round(ink_coverage(page.pixels, boxes), 3),
        image_cover=layer.image_cover,
        unmapped_chars=layer.unmapped_chars or 0,
        dropped_runs=layer.dropped_runs or 0,
    )


def measure_page(
    page: PageImage,
    *,
    settings: Settings,
    path: Path,
    kind: DocumentKind,
    reading_scale: float = 1.0,
) -> PageEvidence:
    """Features of a rendered page (`reading_scale`: how much larger it will be read) and its
    PDF text layer's statistics. Nothing is measured when one provider reads every page."""
    if settings.pipeline.provider != AUTO:
        return PageEvidence()
    features = compute_features(page.pixels, page.dpi * reading_scale, reading_scale)
    turned = 0
    if features.vertical_text >= settings.routing.orientation.min_vertical_text:
        # Its lines run vertically: it will be read turned upright, so it is measured (and
        # billed) turned too, and costs what the upright page costs. A quarter turn either way
        # measures alike: the features do not change with a half turn.
        pixels = np.ascontiguousarray(np.rot90(page.pixels))
        upright = compute_features(pixels, page.dpi * reading_scale, reading_scale)
        features = msgspec.structs.replace(upright, vertical_text=features.vertical_text)
        turned = 90
    stats = text_layer_stats(path, page.page_number - 1, page) if kind == DocumentKind.PDF else None
    return PageEvidence(features=features, text_layer=stats, turned_deg=turned)


def assess_page(
    path: Path,
    kind: DocumentKind,
    page_number: int,
    settings: Settings,
    thumbnail: Thumbnail | None = None,
) -> PageEvidence:
    """Submit-time evidence, on a thumbnail of the page (rendered here unless given)."""
    if settings.pipeline.provider != AUTO:
        return PageEvidence()
    if thumbnail is None:
        thumbnail = render_thumbnail(
            path,
            kind,
            page_number - 1,
            settings.rendering.dpi,
            settings.limits.max_pixels_per_page,
            SCORING_SIDE,
        )
    return measure_page(
        thumbnail.image,
        settings=settings,
        path=path,
        kind=kind,
        reading_scale=thumbnail.reading_scale,
    )


def plan_context(
    settings: Settings,
    *,
    available: frozenset[str] | None = None,
    mode: Mode = Mode.AUTO,
    max_credits: int | None = None,
    plan: str | None = None,
    allowed_tiers: frozenset[Tier] | None = None,
    allow_remote: bool = True,
) -> PlanContext:
    """What the configuration and the request allow. `available`: the providers configured
    and healthy now (default: the local ones)."""
    local = frozenset(n for n, c in settings.providers.items() if is_local(c))
    forced = settings.pipeline.provider
    return PlanContext(
        available=local if available is None else available,
        remote=frozenset(settings.providers) - local,
        mode=mode,
        max_credits=max_credits,
        plan=plan,
        allowed_tiers=frozenset(Tier) if allowed_tiers is None else allowed_tiers,
        allow_remote=allow_remote,
        orientation=settings.pipeline.orientation,
        forced_provider=None if forced == AUTO else forced,
        forced_credits=settings.credits.credits_per_page,
    )


def plan_page(evidence: PageEvidence, settings: Settings, mode: Mode = Mode.AUTO) -> PageRoute:
    """The route of a page read on its own by the local providers (`ocr-gateway ocr`, the
    benchmark): the plan of a one-page document."""
    context = plan_context(settings, mode=mode)
    return plan_document([evidence], settings.routing, context).routes[0]
