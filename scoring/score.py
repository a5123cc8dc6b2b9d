"""Fold page features into one complexity score (0..10, higher is harder) and judge a PDF's
own text layer. Pure functions; weights come from config."""

from __future__ import annotations

import unicodedata

import msgspec

from scoring.features import PageFeatures


class ScoreWeights(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Points each difficulty adds to the score when fully present (each term is 0..1)."""

    handwriting: float = 7.0  # glyph heights vary a lot, strokes joined or on colored paper
    tables: float = 3.0  # ruling lines in both directions
    low_contrast: float = 1.5  # faint ink against its paper
    noise: float = 1.0  # speckle and texture in the background
    small_text: float = 1.5  # glyphs under ~16 px at the reading resolution
    low_resolution: float = 1.0  # under 150 DPI
    skew: float = 0.5  # lines tilted (up to 5 degrees for the full term)
    color_photo: float = 1.0  # a photo of paper rather than a scan


class HandwritingRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    min_height_cv: float = 0.6
    min_color_saturation: float = 0.04
    min_connected_ratio: float = 0.3


PUNCTUATION = frozenset(".,;:!?'\"()-/&%$@#*+=[]{}<>\u2018\u2019\u201c\u201d\u2013\u2014\u2022")


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


def handwriting_likely(f: PageFeatures, rule: HandwritingRule) -> bool:
    return f.component_height_cv >= rule.min_height_cv and (
        f.color_saturation >= rule.min_color_saturation
        or f.connected_ratio >= rule.min_connected_ratio
    )


def score_terms(f: PageFeatures) -> dict[str, float]:
    """Each difficulty as 0..1."""
    script = _clip((f.component_height_cv - 0.5) / 0.5) * (
        0.5 + 0.5 * _clip(max(f.color_saturation / 0.06, f.connected_ratio / 0.4))
    )
    return {
        "handwriting": script,
        "tables": 1.0 if f.tables_likely else 0.0,
        "low_contrast": _clip((0.6 - f.contrast) / 0.4),
        "noise": _clip((f.noise - 0.05) / 0.1),
        "small_text": _clip((16.0 - f.text_height_px) / 8.0) if f.text_height_px else 0.0,
        "low_resolution": _clip((150.0 - f.dpi) / 75.0),
        "skew": _clip(abs(f.skew_deg) / 5.0),
        "color_photo": _clip(f.color_saturation / 0.08),
    }


def complexity_score(f: PageFeatures, weights: ScoreWeights) -> float:
    terms = score_terms(f)
    total = sum(float(getattr(weights, name)) * value for name, value in terms.items())
    return round(min(10.0, total), 2)


def real_text_ratio(text: str) -> float:
    """Share of the non-space characters that are letters, digits or common punctuation:
    a text layer without a Unicode mapping decodes to symbols, controls or private-use codes."""
    chars = [c for c in text if not c.isspace()]
    if not chars:
        return 0.0
    good = 0
    for c in chars:
        category = unicodedata.category(c)
        if category[0] in "LNMP" or category == "Sc" or c in PUNCTUATION:
            good += 1
    letters = sum(1 for c in chars if unicodedata.category(c)[0] in "LM")
    # symbols alone ("7+%-") are not text: require letters among them
    return good / len(chars) if letters >= 0.4 * len(chars) else 0.0


def text_layer_coverage(text_boxes_ink: int, page_ink: int) -> float:
    """Share of the page's ink that lies under the text layer's line boxes."""
    return 1.0 if page_ink == 0 else text_boxes_ink / page_ink
