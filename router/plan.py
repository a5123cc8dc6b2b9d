"""The one route decision: which tier each page of a document is billed at, who reads it, why.

`plan_document(pages, policy, context)` is a pure function. It takes what was measured on each
page (`PageEvidence`: features, text-layer statistics) and what the request and the service
allow (`PlanContext`: mode, `max_credits`, the plan's tiers, `allow_remote`, the providers
available now, a forced provider) and returns every page's `PageRoute`, in order:

1. a forced provider (`pipeline.provider`) reads every page at the flat price; otherwise
2. a trusted PDF text layer answers the page (simple, no OCR); otherwise
3. the complexity score picks the tier, rules raise it (ruling lines -> at least medium,
   handwriting -> complex), the mode moves it (fast -> simple, accurate -> one up);
4. the tier's chain keeps the providers available now (remote ones only where allowed); a rule
   may put another engine first; a tier with none is read and billed by the tier below;
5. the plan's allowed tiers lower a page, then `max_credits` lowers the hardest pages first.

Every step that changes the route adds the features and values that decided it to the reason.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from router.policy import (
    TEXT_LAYER,
    TIER_ORDER,
    CleanPrintRule,
    Mode,
    PageRoute,
    RoutingPolicy,
    TextLayerPolicy,
    TextLayerStats,
    Tier,
)
from scoring.features import PageFeatures
from scoring.score import complexity_score, handwriting_likely, score_terms

ALL_TIERS = frozenset(Tier)


class PageEvidence(msgspec.Struct, frozen=True, kw_only=True):
    """What was measured on one page before reading it."""

    features: PageFeatures | None = None  # None: not measured (forced provider, or it failed)
    text_layer: TextLayerStats | None = None  # PDF pages with a text layer
    unassessed: str | None = None  # why the page could not be measured
    turned_deg: int = 0  # the features were measured on the page turned by this (vertical lines)


class PlanContext(msgspec.Struct, frozen=True, kw_only=True):
    available: frozenset[str]  # providers configured and healthy now (breakers not open)
    remote: frozenset[str] = frozenset()  # which configured providers are remote
    mode: Mode = Mode.AUTO
    max_credits: int | None = None
    plan: str | None = None  # the tenant's plan, for reasons
    allowed_tiers: frozenset[Tier] = ALL_TIERS
    allow_remote: bool = True
    orientation: bool = True  # pipeline.orientation: pages may be turned upright
    forced_provider: str | None = None  # pipeline.provider when it is not "auto"
    forced_credits: int = 1  # credits.credits_per_page, the price of a forced page


class DocumentPlan(msgspec.Struct, frozen=True, kw_only=True):
    routes: list[PageRoute]
    credits: int  # what the routes reserve

    def fits(self, max_credits: int | None) -> bool:
        return max_credits is None or self.credits <= max_credits


def plan_document(
    pages: Sequence[PageEvidence], policy: RoutingPolicy, context: PlanContext
) -> DocumentPlan:
    """The routes of a document's pages, in the order given."""
    available = _usable(context)
    routes = [_route_page(page, policy, context, available) for page in pages]
    if context.allowed_tiers != ALL_TIERS:
        routes = [_limit_tiers(r, context, policy, available) for r in routes]
    routes = _cap_routes(routes, context.max_credits, policy, available)
    return DocumentPlan(routes=routes, credits=sum(r.credits for r in routes))


def _usable(context: PlanContext) -> frozenset[str]:
    if context.allow_remote:
        return context.available
    return context.available - context.remote


def _route_page(
    page: PageEvidence, policy: RoutingPolicy, context: PlanContext, available: frozenset[str]
) -> PageRoute:
    if context.forced_provider is not None:
        forced = context.forced_provider
        return PageRoute(
            tier=Tier.SIMPLE,
            credits=context.forced_credits,
            providers=[forced],
            complexity_score=0.0,
            escalate=False,
            best_of_chain=False,
            reason=f"{forced} reads every page (pipeline.provider)",
        )
    if page.features is None:
        chain = [p for p in policy.tiers[Tier.SIMPLE.value].providers if p in available]
        why = page.unassessed or "no features were measured"
        return PageRoute(
            tier=Tier.SIMPLE,
            credits=policy.credits(Tier.SIMPLE),
            providers=chain,
            complexity_score=0.0,
            escalate=False,
            best_of_chain=False,
            reason=f"the page could not be assessed ({why}); simple tier",
        )
    route = _choose_route(
        page.features, policy, available=available, mode=context.mode, text_layer=page.text_layer
    )
    notes = []
    forbidden = sorted(context.remote & set(policy.tiers[route.tier.value].providers))
    if not context.allow_remote and forbidden and route.providers != [TEXT_LAYER]:
        notes.append(
            f"remote providers ({', '.join(forbidden)}) are not allowed for this "
            "request or tenant (allow_remote: false): read locally"
        )
    upright = (
        context.orientation
        and route.providers != [TEXT_LAYER]
        and page.features.vertical_text >= policy.orientation.min_vertical_text
    )
    if upright or page.turned_deg:
        done = [f"scored turned {page.turned_deg} degrees"] if page.turned_deg else []
        done += ["turned upright before reading"] if upright else []
        notes.append(
            f"lines run vertically (vertical_text {page.features.vertical_text:.2f}): "
            + " and ".join(done)
        )
    if not notes:
        return route
    return msgspec.structs.replace(
        route, upright_first=upright, reason="; ".join([route.reason, *notes])
    )


def text_layer_trusted(stats: TextLayerStats | None, policy: TextLayerPolicy) -> tuple[bool, str]:
    if stats is None:
        return False, "no text layer"
    if stats.image_cover > policy.max_image_cover:
        return False, (
            f"a scanned page (an image covers {stats.image_cover:.0%} of it); "
            "its text layer is not trusted"
        )
    if stats.real_ratio < policy.min_real_ratio:
        return False, (
            f"the text layer does not decode to real characters "
            f"({stats.real_ratio:.0%} letters, digits and punctuation)"
        )
    if stats.coverage < policy.min_coverage:
        return False, f"the text layer covers only {stats.coverage:.0%} of the page's ink"
    if stats.unmapped_chars > policy.max_unmapped_chars:
        return False, (
            f"the text layer has {stats.unmapped_chars} characters PDFium could not map to "
            f"Unicode (more than {policy.max_unmapped_chars}): it would answer wrong letters"
        )
    if stats.dropped_runs > policy.max_dropped_runs:
        return False, (
            f"the text layer drops {stats.dropped_runs} runs of text drawn on the page (glyphs "
            f"PDFium could not map to Unicode; more than {policy.max_dropped_runs})"
        )
    return True, (
        f"the PDF's own text layer is real text ({stats.real_ratio:.0%}) covering "
        f"{stats.coverage:.0%} of the page's ink"
    )


def explain_score(features: PageFeatures, policy: RoutingPolicy) -> str:
    """'complexity 3.3 (small text +1.2 at 9 px glyphs, ...)': each term's points and the
    feature value behind it, largest first."""
    score = complexity_score(features, policy.weights)
    measured = {
        "handwriting": f"glyph height variation {features.component_height_cv:.2f}",
        "tables": f"{features.h_rules} horizontal and {features.v_rules} vertical rules",
        "low_contrast": f"contrast {features.contrast:.2f}",
        "noise": f"noise {features.noise:.3f}",
        "small_text": f"{features.text_height_px:.0f} px glyphs",
        "low_resolution": f"{features.dpi:.0f} DPI",
        "skew": f"skew {features.skew_deg:.1f} deg",
        "color_photo": f"color saturation {features.color_saturation:.3f}",
    }
    points = {
        name: float(getattr(policy.weights, name)) * value
        for name, value in score_terms(features).items()
    }
    terms = [
        f"{name.replace('_', ' ')} +{value:.1f} at {measured[name]}"
        for name, value in sorted(points.items(), key=lambda kv: -kv[1])
        if value >= 0.05
    ]
    return f"complexity {score:.1f} ({', '.join(terms) or 'no difficulty measured'})"


def _choose_route(
    features: PageFeatures,
    policy: RoutingPolicy,
    *,
    available: frozenset[str],
    mode: Mode,
    text_layer: TextLayerStats | None,
) -> PageRoute:
    score = complexity_score(features, policy.weights)
    trusted, layer_reason = text_layer_trusted(text_layer, policy.text_layer)
    if trusted:
        return PageRoute(
            tier=Tier.SIMPLE,
            credits=policy.credits(Tier.SIMPLE),
            providers=[TEXT_LAYER],
            complexity_score=score,
            reason=layer_reason,
            escalate=False,
            best_of_chain=False,
            features=features,
        )
    reasons = [explain_score(features, policy)]
    tier = (
        Tier.COMPLEX
        if score >= policy.complex_from
        else Tier.MEDIUM
        if score >= policy.medium_from
        else Tier.SIMPLE
    )
    if tier is not Tier.SIMPLE:
        bound = policy.complex_from if tier is Tier.COMPLEX else policy.medium_from
        reasons.append(f"{tier.value} from {bound:g}")
    if features.tables_likely and tier is Tier.SIMPLE:
        tier = Tier.MEDIUM
        reasons.append(
            f"ruling lines ({features.h_rules} horizontal, {features.v_rules} "
            "vertical) mark a table: at least medium"
        )
    if handwriting_likely(features, policy.handwriting) and tier is not Tier.COMPLEX:
        tier = Tier.COMPLEX
        reasons.append(
            f"glyph heights vary {features.component_height_cv:.2f} (handwriting likely): complex"
        )
    if text_layer is not None:
        reasons.append(layer_reason)
    if mode is Mode.FAST:
        tier = Tier.SIMPLE
        reasons.append("fast mode: simple tier, first engine only")
    elif mode is Mode.ACCURATE and tier is not Tier.COMPLEX:
        tier = TIER_ORDER[TIER_ORDER.index(tier) + 1]
        reasons.append("accurate mode: one tier up, every engine of the chain")
    chain, chain_reason, billed = _pick_chain(tier, features, policy, available)
    if chain_reason:
        reasons.append(chain_reason)
    if mode is Mode.FAST:
        chain = chain[:1]
    return PageRoute(
        tier=tier,
        credits=policy.credits(billed),
        providers=chain,
        complexity_score=score,
        reason="; ".join(reasons),
        escalate=policy.escalation.enabled and mode is Mode.AUTO,
        best_of_chain=mode is Mode.ACCURATE,
        features=features,
    )


def _order(
    chain: list[str], features: PageFeatures, rule: CleanPrintRule | None, available: frozenset[str]
) -> tuple[list[str], str]:
    chain = [p for p in chain if p in available]
    if (
        rule is not None
        and rule.provider in chain
        and features.dpi >= rule.min_dpi
        and features.text_height_px >= rule.min_text_height_px
        and features.component_height_cv <= rule.max_height_cv
        and features.noise <= rule.max_noise
        and features.contrast >= rule.min_contrast
    ):
        chain.remove(rule.provider)
        return [rule.provider, *chain], (
            f"uniform print at {features.dpi:.0f} DPI with {features.text_height_px:.0f} px "
            f"glyphs (height variation {features.component_height_cv:.2f}) puts "
            f"{rule.provider} first"
        )
    return chain, ""


def _pick_chain(
    tier: Tier, features: PageFeatures, policy: RoutingPolicy, available: frozenset[str]
) -> tuple[list[str], str, Tier]:
    """The tier's chain, or the best available one below it when none of its providers is
    (billed at that lower tier)."""
    wanted = TIER_ORDER.index(tier)
    configured = policy.tiers[tier.value].providers
    missing = [p for p in configured if p not in available]
    for index in range(wanted, -1, -1):
        candidate = TIER_ORDER[index]
        # the clean-print rule picks a cheaper engine; complex pages keep their strongest first
        rule = policy.clean_print if candidate is not Tier.COMPLEX else None
        chain, reason = _order(policy.tiers[candidate.value].providers, features, rule, available)
        if not chain:
            continue
        if candidate is not tier:
            return (
                chain,
                (
                    f"no {tier.value}-tier provider is available "
                    f"({', '.join(configured) or 'none'}); read by the "
                    f"{candidate.value} tier's {chain[0]} and billed at that tier"
                ),
                candidate,
            )
        if missing:
            skipped = f"{', '.join(missing)} not available now"
            reason = f"{reason}; {skipped}" if reason else skipped
        return chain, reason, tier
    fallback = sorted(available)
    return (
        fallback,
        (
            f"no tier's provider is available; read by {fallback[0]}"
            if fallback
            else "no provider is available"
        ),
        Tier.SIMPLE,
    )


def _cap_routes(
    routes: list[PageRoute],
    max_credits: int | None,
    policy: RoutingPolicy,
    available: frozenset[str],
) -> list[PageRoute]:
    """Lower the tiers of the hardest pages until the total fits `max_credits`."""
    if max_credits is None or sum(r.credits for r in routes) <= max_credits:
        return routes
    capped = list(routes)
    order = sorted(range(len(capped)), key=lambda i: -capped[i].complexity_score)
    while sum(r.credits for r in capped) > max_credits:
        lowered = False
        for i in order:
            route = capped[i]
            if route.tier is Tier.SIMPLE or sum(r.credits for r in capped) <= max_credits:
                continue
            tier = TIER_ORDER[TIER_ORDER.index(route.tier) - 1]
            capped[i] = _lowered(
                route, tier, policy, available, f"the request's max_credits ({max_credits})"
            )
            lowered = True
        if not lowered:
            break
    return capped


def _limit_tiers(
    route: PageRoute, context: PlanContext, policy: RoutingPolicy, available: frozenset[str]
) -> PageRoute:
    """Lower a page to the highest tier its tenant's plan allows (the plan's tiers run from
    simple up without a gap, so a later max_credits cap lowers within them)."""
    allowed = context.allowed_tiers
    if route.tier in allowed:
        return route
    tier = max(
        (t for t in allowed if TIER_ORDER.index(t) < TIER_ORDER.index(route.tier)),
        key=TIER_ORDER.index,
        default=Tier.SIMPLE,
    )
    return _lowered(
        route,
        tier,
        policy,
        available,
        f"the {context.plan or 'tenant'} plan, "
        "which allows " + ", ".join(t.value for t in TIER_ORDER if t in allowed),
    )


def _lowered(
    route: PageRoute, tier: Tier, policy: RoutingPolicy, available: frozenset[str], by: str
) -> PageRoute:
    chain, billed = route.providers, tier
    if route.features is not None and chain != [TEXT_LAYER]:
        chain, _, billed = _pick_chain(tier, route.features, policy, available)
    return msgspec.structs.replace(
        route,
        tier=tier,
        credits=policy.credits(billed),
        providers=chain,
        capped=True,
        reason=f"{route.reason}; lowered to {tier.value} by {by}",
    )
