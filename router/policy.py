"""The routing policy (tiers, chains, rules, thresholds: configuration) and the route it
produces for a page. The decision itself is `router.plan.plan_document`.

Tiers: simple (1 credit), medium (3), complex (5). Each tier has an ordered chain of providers.
"""

from __future__ import annotations

import enum

import msgspec

from scoring.features import PageFeatures
from scoring.score import HandwritingRule, ScoreWeights

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
    glyphs of even height, big enough). Off by default (`RoutingPolicy.clean_print` None): it
    put Tesseract first while RapidOCR read PP-OCRv4; with PP-OCRv6 the corpus benchmark has
    RapidOCR ahead on print too (issue 12)."""

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
    max_unmapped_chars: int = 0  # PDFium could not map them to Unicode: wrong letters
    max_dropped_runs: int = 0  # text drawn on the page that PDFium gives no text for


class OrientationPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    min_vertical_text: float = 0.6  # features.vertical_text from here: turn the page upright first


class EscalationPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = True
    min_confidence: float = 0.8  # below this, the next provider of the chain reads the page


class RoutingPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    medium_from: float = 3.0  # complexity score where the medium tier starts
    complex_from: float = 6.0
    tiers: dict[str, TierPolicy] = msgspec.field(
        default_factory=lambda: {
            "simple": TierPolicy(credits=1, providers=["rapidocr", "tesseract"]),
            "medium": TierPolicy(credits=3, providers=["rapidocr", "tesseract"]),
            "complex": TierPolicy(credits=5, providers=["rapidocr", "tesseract"]),
        }
    )
    weights: ScoreWeights = ScoreWeights()
    handwriting: HandwritingRule = HandwritingRule()
    clean_print: CleanPrintRule | None = None  # off: see CleanPrintRule
    text_layer: TextLayerPolicy = TextLayerPolicy()
    escalation: EscalationPolicy = EscalationPolicy()
    orientation: OrientationPolicy = OrientationPolicy()

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
    unmapped_chars: int = 0  # with no Unicode mapping, in runs of 2+ (a lone bullet not counted)
    dropped_runs: int = 0  # visible text runs that give no text (emoji drawn by Type 3 fonts)


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
    upright_first: bool = False  # lines run vertically: detect the orientation before reading
    language: str | None = None  # a Tesseract code the engines read in (None: their default)
