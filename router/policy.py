"""Which tier a page is billed at and which providers read it. Pure decisions.

Tiers: simple (1 credit), medium (3), complex (5). The complexity score picks the tier by
thresholds; rules raise it (tables -> at least medium, handwriting -> complex). A PDF page whose
own text layer is real text and covers the page is answered from it (simple, no OCR). Each tier
has an ordered chain of providers; a rule may put another engine first by features. A request's
`mode` and `max_credits` bound the result, and the decision says so.
"""

from __future__ import annotations

import enum

import msgspec

from scoring.features import PageFeatures
from scoring.score import HandwritingRule, ScoreWeights, complexity_score, handwriting_likely

TEXT_LAYER = "pdf_text"  # the provider name of a PDF's own text layer


class Tier(enum.StrEnum):
    SIMPLE = "simple"
    MEDIUM = "medium"
    COMPLEX = "complex"


TIER_ORDER = (Tier.SIMPLE, Tier.MEDIUM, Tier.COMPLEX)


class Mode(enum.StrEnum):
    AUTO = "auto"  # tier by complexity
    FAST = "fast"  # every page simple, first engine only, no escalation
    ACCURATE = "accurate"  # one tier up, every engine of the chain, the best reading kept


class TierPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    credits: int
    providers: list[str]  # tried in order


class CleanPrintRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Put `provider` first for uniform print at good resolution (book and brochure scans:
    glyphs of even height, big enough), where the corpus benchmark shows Tesseract ahead."""

    provider: str = "tesseract"
    min_dpi: float = 150.0
    min_text_height_px: float = 15.0
    max_height_cv: float = 0.33  # glyph heights this even: print, not forms or receipts
    max_noise: float = 0.12
    min_contrast: float = 0.4


class TextLayerPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    min_real_ratio: float = 0.9  # letters, digits and punctuation among its characters
    min_coverage: float = 0.6  # share of the page's ink under its line boxes
    max_image_cover: float = 0.5  # a page under one big image is a scan


class EscalationPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = True
    min_confidence: float = 0.8  # below this, the next provider of the chain reads the page


class RoutingPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    medium_from: float = 3.0  # complexity score where the medium tier starts
    complex_from: float = 6.0
    tiers: dict[str, TierPolicy] = msgspec.field(default_factory=lambda: {
        "simple": TierPolicy(credits=1, providers=["rapidocr", "tesseract"]),
        "medium": TierPolicy(credits=3, providers=["rapidocr", "tesseract"]),
        "complex": TierPolicy(credits=5, providers=["rapidocr", "tesseract"]),
    })
    weights: ScoreWeights = ScoreWeights()
    handwriting: HandwritingRule = HandwritingRule()
    clean_print: CleanPrintRule | None = CleanPrintRule()
    text_layer: TextLayerPolicy = TextLayerPolicy()
    escalation: EscalationPolicy = EscalationPolicy()

    def __post_init__(self) -> None:
        if set(self.tiers) != {t.value for t in Tier}:
            raise ValueError("routing.tiers must define simple, medium and complex")
        if not 0 <= self.medium_from <= self.complex_from <= 10:
            raise ValueError("need 0 <= medium_from <= complex_from <= 10")

    def credits(self, tier: Tier) -> int:
        return self.tiers[tier.value].credits


class TextLayerStats(msgspec.Struct, frozen=True, kw_only=True):
    real_ratio: float
    coverage: float
    image_cover: float


class PageRoute(msgspec.Struct, frozen=True, kw_only=True):
    """The decision for one page: what it costs and who reads it."""

    tier: Tier
    credits: int
    providers: list[str]  # in order; [TEXT_LAYER] for a trusted text layer
    complexity_score: float
    reason: str
    escalate: bool  # a low-confidence reading goes to the next provider
    best_of_chain: bool  # read with every provider, keep the best (accurate mode)
    capped: bool = False  # the request's max_credits or the plan's allowed tiers lowered it
    features: PageFeatures | None = None


def text_layer_trusted(stats: TextLayerStats | None, policy: TextLayerPolicy) -> tuple[bool, str]:
    if stats is None:
        return False, "no text layer"
    if stats.image_cover > policy.max_image_cover:
        return False, (f"a scanned page (an image covers {stats.image_cover:.0%} of it); "
                       "its text layer is not trusted")
    if stats.real_ratio < policy.min_real_ratio:
        return False, (f"the text layer does not decode to real characters "
                       f"({stats.real_ratio:.0%} letters, digits and punctuation)")
    if stats.coverage < policy.min_coverage:
        return False, f"the text layer covers only {stats.coverage:.0%} of the page's ink"
    return True, (f"the PDF's own text layer is real text ({stats.real_ratio:.0%}) covering "
                  f"{stats.coverage:.0%} of the page's ink")


def _order(chain: list[str], features: PageFeatures, rule: CleanPrintRule | None,
           available: set[str]) -> tuple[list[str], str]:
    chain = [p for p in chain if p in available]
    if (rule is not None and rule.provider in chain and features.dpi >= rule.min_dpi
            and features.text_height_px >= rule.min_text_height_px
            and features.component_height_cv <= rule.max_height_cv
            and features.noise <= rule.max_noise and features.contrast >= rule.min_contrast):
        chain.remove(rule.provider)
        return [rule.provider, *chain], (
            f"uniform print at {features.dpi:.0f} DPI with {features.text_height_px:.0f} px "
            f"glyphs (height variation {features.component_height_cv:.2f}) puts "
            f"{rule.provider} first")
    return chain, ""


def choose_route(features: PageFeatures, policy: RoutingPolicy, *, available: set[str],
                 mode: Mode = Mode.AUTO, text_layer: TextLayerStats | None = None) -> PageRoute:
    """The route of one page. `available` are the providers configured and healthy."""
    score = complexity_score(features, policy.weights)
    trusted, layer_reason = text_layer_trusted(text_layer, policy.text_layer)
    if trusted:
        return PageRoute(tier=Tier.SIMPLE, credits=policy.credits(Tier.SIMPLE),
                         providers=[TEXT_LAYER], complexity_score=score, reason=layer_reason,
                         escalate=False, best_of_chain=False, features=features)
    reasons = [f"complexity {score:.1f}"]
    tier = (Tier.COMPLEX if score >= policy.complex_from
            else Tier.MEDIUM if score >= policy.medium_from else Tier.SIMPLE)
    if features.tables_likely and tier is Tier.SIMPLE:
        tier = Tier.MEDIUM
        reasons.append(f"ruling lines ({features.h_rules} horizontal, {features.v_rules} "
                       "vertical) mark a table: at least medium")
    if handwriting_likely(features, policy.handwriting) and tier is not Tier.COMPLEX:
        tier = Tier.COMPLEX
        reasons.append(f"glyph heights vary {features.component_height_cv:.2f} "
                       "(handwriting likely): complex")
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
    return PageRoute(tier=tier, credits=policy.credits(billed), providers=chain,
                     complexity_score=score, reason="; ".join(reasons),
                     escalate=policy.escalation.enabled and mode is Mode.AUTO,
                     best_of_chain=mode is Mode.ACCURATE, features=features)


def _pick_chain(tier: Tier, features: PageFeatures, policy: RoutingPolicy,
                available: set[str]) -> tuple[list[str], str, Tier]:
    """The tier's chain, or the best available one below it when none of its providers is
    (billed at that lower tier)."""
    wanted = TIER_ORDER.index(tier)
    for index in range(wanted, -1, -1):
        candidate = TIER_ORDER[index]
        # the clean-print rule picks a cheaper engine; complex pages keep their strongest first
        rule = policy.clean_print if candidate is not Tier.COMPLEX else None
        chain, reason = _order(policy.tiers[candidate.value].providers, features, rule,
                               available)
        if chain:
            if candidate is not tier:
                missing = ", ".join(policy.tiers[tier.value].providers) or "none"
                return chain, (f"no {tier.value}-tier provider is available ({missing}); "
                               f"read by the {candidate.value} tier's {chain[0]} and billed "
                               "at that tier"), candidate
            return chain, reason, tier
    fallback = sorted(available)
    return fallback, (f"no tier's provider is available; read by {fallback[0]}" if fallback
                      else "no provider is available"), Tier.SIMPLE


def cap_routes(routes: list[PageRoute], max_credits: int | None, policy: RoutingPolicy,
               available: set[str]) -> list[PageRoute]:
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
            capped[i] = _lowered(route, tier, policy, available,
                                 f"the request's max_credits ({max_credits})")
            lowered = True
        if not lowered:
            break
    return capped


def limit_tiers(route: PageRoute, allowed: frozenset[Tier], plan: str, policy: RoutingPolicy,
                available: set[str]) -> PageRoute:
    """Lower a page to the highest tier its tenant's plan allows (the plan's tiers run from
    simple up without a gap, so a later max_credits cap lowers within them)."""
    if route.tier in allowed:
        return route
    tier = max((t for t in allowed if TIER_ORDER.index(t) < TIER_ORDER.index(route.tier)),
               key=TIER_ORDER.index, default=Tier.SIMPLE)
    return _lowered(route, tier, policy, available, f"the {plan} plan, which allows "
                    + ", ".join(t.value for t in TIER_ORDER if t in allowed))


def _lowered(route: PageRoute, tier: Tier, policy: RoutingPolicy, available: set[str],
             by: str) -> PageRoute:
    chain, billed = route.providers, tier
    if route.features is not None and chain != [TEXT_LAYER]:
        chain, _, billed = _pick_chain(tier, route.features, policy, available)
    return msgspec.structs.replace(
        route, tier=tier, credits=policy.credits(billed), providers=chain, capped=True,
        reason=f"{route.reason}; lowered to {tier.value} by {by}")
