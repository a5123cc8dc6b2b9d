"""Scoring and routing: pure decisions in tables, and assessments of real corpus pages."""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from pathlib import Path

import msgspec
import numpy as np
import pytest

from benchmarks.metrics import bag_of_words_f1
from gateway.assess import assess_page
from gateway.config import Settings, load_settings
from gateway.documents import detect_kind
from gateway.pipeline import PageEngine, PageTask
from router.policy import (
    TEXT_LAYER,
    Mode,
    PageRoute,
    RoutingPolicy,
    TextLayerPolicy,
    TextLayerStats,
    Tier,
    cap_routes,
    choose_route,
    text_layer_trusted,
)
from scoring import features as scoring_features
from scoring.features import PageFeatures
from scoring.score import real_text_ratio
from tests.support.gateway_process import REPO

CLEAN = PageFeatures(ink_ratio=0.1, contrast=0.9, noise=0.05, edge_density=0.1, skew_deg=0.0,
                     h_rules=0, v_rules=0, line_regularity=0.8, component_height_cv=0.3,
                     connected_ratio=0.02, axis_alignment=0.6, color_saturation=0.0,
                     vertical_text=0.3, dpi=300.0, text_height_px=24.0)
LOCAL = {"tesseract", "rapidocr"}


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(REPO / "config.yaml", env={})


def with_(**changes: object) -> PageFeatures:
    return msgspec.structs.replace(CLEAN, **changes)


@pytest.mark.parametrize(("features", "tier"), [
    (CLEAN, Tier.SIMPLE),
    (with_(h_rules=6, v_rules=4), Tier.MEDIUM),  # a table: at least medium
    (with_(component_height_cv=1.0, color_saturation=0.09), Tier.COMPLEX),  # handwriting
    (with_(contrast=0.1, noise=0.2, dpi=90.0, text_height_px=8.0), Tier.MEDIUM),
])
def test_tier_follows_score_and_rules(features: PageFeatures, tier: Tier) -> None:
    route = choose_route(features, RoutingPolicy(), available=LOCAL)
    assert route.tier is tier
    assert route.credits == {"simple": 1, "medium": 3, "complex": 5}[tier.value]
    assert route.reason.startswith("complexity ")


def test_clean_print_puts_tesseract_first_and_noisy_scans_rapidocr() -> None:
    assert choose_route(CLEAN, RoutingPolicy(), available=LOCAL).providers[0] == "tesseract"
    accurate = choose_route(with_(h_rules=6, v_rules=4), RoutingPolicy(), available=LOCAL,
                            mode=Mode.ACCURATE)
    assert accurate.tier is Tier.COMPLEX
    assert accurate.providers[0] == "rapidocr"  # complex pages keep the tier's first provider
    low_res = with_(dpi=100.0, text_height_px=12.0, h_rules=5, v_rules=3)
    assert choose_route(low_res, RoutingPolicy(), available=LOCAL).providers[0] == "rapidocr"


@pytest.mark.parametrize(("mode", "tier", "chain_length", "escalate"), [
    (Mode.AUTO, Tier.MEDIUM, 2, True),
    (Mode.FAST, Tier.SIMPLE, 1, False),
    (Mode.ACCURATE, Tier.COMPLEX, 2, False),
])
def test_modes_bound_the_route(mode: Mode, tier: Tier, chain_length: int,
                               escalate: bool) -> None:
    table = with_(h_rules=6, v_rules=4)
    route = choose_route(table, RoutingPolicy(), available=LOCAL, mode=mode)
    assert (route.tier, len(route.providers), route.escalate) == (tier, chain_length, escalate)
    assert route.best_of_chain is (mode is Mode.ACCURATE)


def test_missing_tier_provider_falls_back_and_says_so() -> None:
    policy = msgspec.structs.replace(RoutingPolicy(), tiers={
        **RoutingPolicy().tiers,
        "complex": msgspec.convert({"credits": 5, "providers": ["vlm"]},
                                   type=type(RoutingPolicy().tiers["complex"]))})
    route = choose_route(with_(component_height_cv=1.0, color_saturation=0.09), policy,
                         available=LOCAL)
    assert route.tier is Tier.COMPLEX
    assert route.providers[0] in LOCAL
    assert route.credits == 3  # billed at the tier whose provider read it
    assert "no complex-tier provider is available (vlm)" in route.reason


def test_max_credits_lowers_the_hardest_pages_first() -> None:
    policy = RoutingPolicy()
    hard = choose_route(with_(component_height_cv=1.0, color_saturation=0.09), policy,
                        available=LOCAL)
    easy = choose_route(CLEAN, policy, available=LOCAL)
    capped = cap_routes([easy, hard, hard], 7, policy, LOCAL)
    assert sum(r.credits for r in capped) <= 7
    assert capped[0] == easy
    assert all(r.capped and "max_credits" in r.reason for r in capped[1:])


def test_ruling_lines_forgive_one_missing_pixel_only() -> None:
    ink = np.zeros((300, 1000), dtype=bool)
    ink[50, 100:500] = True  # a 400 px rule
    ink[51, 100:500] = True  # two rows thick: still one line
    ink[150, 100:500] = True
    ink[150, 300] = False  # one pixel missing: still a rule
    ink[250, 100:500] = True
    ink[250, 300:302] = False  # two missing: two shorter runs, neither 400 long
    assert scoring_features._long_runs(ink, 400, axis=1) == 2
    assert scoring_features._long_runs(ink.T.copy(), 400, axis=0) == 2
    assert scoring_features._long_runs(ink, 10, axis=1) == 0  # below MIN_RULE_PX: glyph strokes


def test_a_page_thinner_than_two_pixels_scores_without_nan(corpus: Path, tmp_path: Path,
                                                         settings: Settings) -> None:
    """A 5000 x 3 strip cut from a real text line: its scoring copy is 1 px high."""
    from PIL import Image

    line = Image.open(corpus / "a_clean_printed/uw3_lines/010004.bin.png").convert("RGB")
    strip = tmp_path / "strip.png"
    line.resize((5000, 3)).save(strip)
    route = assess_page(strip, detect_kind(strip.read_bytes()), 1, settings)
    assert route.features is not None
    values = msgspec.structs.asdict(route.features)
    assert all(np.isfinite(v) for v in values.values()), values
    assert 0.0 <= route.complexity_score <= 10.0


def test_histogram_median_matches_numpy() -> None:
    values = np.random.default_rng(7).integers(0, 256, size=1001).astype(np.uint8)
    for sample in (values, values[:1000], values[:1], values[:2]):
        histogram = np.bincount(sample, minlength=256)
        assert scoring_features._median(histogram, 0.0) == float(np.median(sample))
    assert scoring_features._median(np.zeros(256, dtype=np.int64), 42.0) == 42.0


@pytest.mark.parametrize(("stats", "trusted"), [
    (None, False),
    (TextLayerStats(real_ratio=1.0, coverage=0.95, image_cover=0.0), True),
    (TextLayerStats(real_ratio=0.2, coverage=0.95, image_cover=0.0), False),
    (TextLayerStats(real_ratio=1.0, coverage=0.3, image_cover=0.0), False),
    (TextLayerStats(real_ratio=1.0, coverage=0.95, image_cover=1.0), False),
])
def test_text_layer_trust(stats: TextLayerStats | None, trusted: bool) -> None:
    assert text_layer_trusted(stats, TextLayerPolicy())[0] is trusted


@pytest.mark.parametrize(("text", "real"), [
    ("The Crazy Ones", 1.0), ('"7+%-', 0.0), ("", 0.0), ("مرحبا بالعالم", 1.0)])
def test_real_text_ratio(text: str, real: float) -> None:
    assert real_text_ratio(text) == real


def manifest(corpus: Path, category: str) -> list[dict[str, str]]:
    lines = (corpus / category / "manifest.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def route_of(corpus: Path, category: str, file: str, settings: Settings,
             page: int = 1) -> PageRoute:
    path = corpus / category / file
    kind = detect_kind(path.read_bytes()[:2048])
    assert kind is not None
    return assess_page(path, kind, page, settings)


def test_handwritten_pages_are_scored_complex(corpus: Path, settings: Settings) -> None:
    tiers = Counter(route_of(corpus, "e_handwriting", e["file"], settings).tier
                    for e in manifest(corpus, "e_handwriting"))
    assert tiers == {Tier.COMPLEX: len(manifest(corpus, "e_handwriting"))}


def test_born_digital_pages_go_to_the_text_layer(corpus: Path, settings: Settings) -> None:
    for entry in manifest(corpus, "f_pdfs"):
        if entry["kind"].startswith("born_digital"):
            route = route_of(corpus, "f_pdfs", entry["file"], settings)
            assert route.providers == [TEXT_LAYER], (entry["file"], route.reason)
            assert route.credits == 1


@pytest.mark.parametrize("file", ["odd_encoding/truetype_font_nomapping.pdf",
                                  "pypdf/Seige_of_Vicksburg_Sample_OCR.pdf",
                                  "ocrmypdf/graph_ocred.pdf"])
def test_untrustworthy_text_layers_go_to_ocr(corpus: Path, settings: Settings,
                                             file: str) -> None:
    route = route_of(corpus, "f_pdfs", file, settings)
    assert TEXT_LAYER not in route.providers
    assert "text layer" in route.reason


@pytest.fixture(scope="module")
def engine(settings: Settings) -> PageEngine:
    return PageEngine(settings)


def chars(text: str) -> Counter[str]:
    """Characters without whitespace, ligatures unfolded (NFKC): 'ﬁ' is 'fi'."""
    return Counter(c for c in unicodedata.normalize("NFKC", text) if not c.isspace())


@pytest.mark.parametrize("file", ["crazyones.pdf", "002-trivial-libre-office-writer.pdf",
                                  "tracemonkey.pdf"])
def test_text_layer_output_matches_the_text_layer(corpus: Path, engine: PageEngine,
                                                  file: str) -> None:
    path = corpus / "f_pdfs/born_digital" / file
    result = engine.read_page(PageTask(path=str(path), kind=detect_kind(b"%PDF-"),
                                       page_number=1))
    assert result.pipeline_metadata is not None
    assert result.pipeline_metadata.provider_used == TEXT_LAYER
    truth_file = next(path.parent.glob(path.stem + ".*.txt"))
    truth = chars(truth_file.read_text().split("\f")[0])
    got = chars("\n".join(b.text for b in result.content_blocks))
    overlap = sum((truth & got).values())
    assert overlap / max(sum(truth.values()), sum(got.values())) >= 0.995


@pytest.mark.parametrize(("rotated", "upright"), [
    ("a_clean_printed/tesseract/phototest-rotated-180.png",
     "a_clean_printed/tesseract/phototest.tif"),
    ("f_pdfs/ocrmypdf/rotated_skew.pdf", "f_pdfs/ocrmypdf/skew.pdf"),
])
def test_rotated_copies_read_like_the_upright_page(corpus: Path, engine: PageEngine,
                                                   rotated: str, upright: str) -> None:
    truth_for = {"phototest": "a_clean_printed/tesseract/phototest.gt.txt",
                 "skew": "f_pdfs/ocrmypdf/linn.reference.txt"}
    truth = (corpus / truth_for[Path(upright).stem]).read_text()
    scores = []
    for file in (rotated, upright):
        path = corpus / file
        result = engine.read_page(PageTask(path=str(path),
                                           kind=detect_kind(path.read_bytes()[:2048]),
                                           page_number=1))
        scores.append(bag_of_words_f1(truth, "\n".join(b.text for b in result.content_blocks)))
    assert scores[0] >= scores[1] - 0.02, scores
