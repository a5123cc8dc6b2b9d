"""Scoring and routing: pure decisions in tables, and assessments of real corpus pages."""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from benchmarks.metrics import bag_of_words_f1
from gateway.config import Settings, load_settings
from gateway.work.assess import assess_page, plan_page
from gateway.work.documents import DocumentKind, detect_kind
from gateway.work.pipeline import PageEngine, PageTask
from router.plan import PageEvidence, PlanContext, plan_document, text_layer_trusted
from router.policy import (
    TEXT_LAYER,
    CleanPrintRule,
    Mode,
    PageRoute,
    RoutingPolicy,
    TextLayerPolicy,
    TextLayerStats,
    Tier,
)
from scoring import features as scoring_features
from scoring.features import PageFeatures
from scoring.score import real_text_ratio
from tests.support.gateway_process import REPO

CLEAN = PageFeatures(
    ink_ratio=0.1,
    contrast=0.9,
    noise=0.05,
    edge_density=0.1,
    skew_deg=0.0,
    h_rules=0,
    v_rules=0,
    line_regularity=0.8,
    component_height_cv=0.3,
    connected_ratio=0.02,
    axis_alignment=0.6,
    color_saturation=0.0,
    vertical_text=0.3,
    dpi=300.0,
    text_height_px=24.0,
)
LOCAL = {"tesseract", "rapidocr"}


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(REPO / "config.yaml", env={})


def with_(**changes: object) -> PageFeatures:
    return msgspec.structs.replace(CLEAN, **changes)


def choose_route(
    features: PageFeatures,
    policy: RoutingPolicy,
    *,
    available: set[str],
    mode: Mode = Mode.AUTO,
    **context: Any,
) -> PageRoute:
    """The plan of a one-page document."""
    plan = plan_document(
        [PageEvidence(features=features)],
        policy,
        PlanContext(available=frozenset(available), mode=mode, **context),
    )
    return plan.routes[0]


@pytest.mark.parametrize(
    ("features", "tier"),
    [
        (CLEAN, Tier.SIMPLE),
        (with_(h_rules=6, v_rules=4), Tier.MEDIUM),  # a table: at least medium
        (with_(component_height_cv=1.0, color_saturation=0.09), Tier.COMPLEX),  # handwriting
        (with_(contrast=0.1, noise=0.2, dpi=90.0, text_height_px=8.0), Tier.MEDIUM),
    ],
)
def test_tier_follows_score_and_rules(features: PageFeatures, tier: Tier) -> None:
    route = choose_route(features, RoutingPolicy(), available=LOCAL)
    assert route.tier is tier
    assert route.credits == {"simple": 1, "medium": 3, "complex": 5}[tier.value]
    assert route.reason.startswith("complexity ")


def test_clean_print_puts_tesseract_first_and_noisy_scans_rapidocr() -> None:
    """The clean-print rule, where configured (off by default since PP-OCRv6, issue 12)."""
    rule = RoutingPolicy(clean_print=CleanPrintRule())
    assert choose_route(CLEAN, rule, available=LOCAL).providers[0] == "tesseract"
    assert choose_route(CLEAN, RoutingPolicy(), available=LOCAL).providers[0] == "rapidocr"
    accurate = choose_route(with_(h_rules=6, v_rules=4), rule, available=LOCAL, mode=Mode.ACCURATE)
    assert accurate.tier is Tier.COMPLEX
    assert accurate.providers[0] == "rapidocr"  # complex pages keep the tier's first provider
    low_res = with_(dpi=100.0, text_height_px=12.0, h_rules=5, v_rules=3)
    assert choose_route(low_res, rule, available=LOCAL).providers[0] == "rapidocr"


@pytest.mark.parametrize(
    ("mode", "tier", "chain_length", "escalate"),
    [
        (Mode.AUTO, Tier.MEDIUM, 2, True),
        (Mode.FAST, Tier.SIMPLE, 1, False),
        (Mode.ACCURATE, Tier.COMPLEX, 2, False),
    ],
)
def test_modes_bound_the_route(mode: Mode, tier: Tier, chain_length: int, escalate: bool) -> None:
    table = with_(h_rules=6, v_rules=4)
    route = choose_route(table, RoutingPolicy(), available=LOCAL, mode=mode)
    assert (route.tier, len(route.providers), route.escalate) == (tier, chain_length, escalate)
    assert route.best_of_chain is (mode is Mode.ACCURATE)


def test_missing_tier_provider_falls_back_and_says_so() -> None:
    policy = msgspec.structs.replace(
        RoutingPolicy(),
        tiers={
            **RoutingPolicy().tiers,
            "complex": msgspec.convert(
                {"credits": 5, "providers": ["vlm"]}, type=type(RoutingPolicy().tiers["complex"])
            ),
        },
    )
    route = choose_route(
        with_(component_height_cv=1.0, color_saturation=0.09), policy, available=LOCAL
    )
    assert route.tier is Tier.COMPLEX
    assert route.providers[0] in LOCAL
    assert route.credits == 3  # billed at the tier whose provider read it
    assert "no complex-tier provider is available (vlm)" in route.reason


def test_max_credits_lowers_the_hardest_pages_first() -> None:
    policy = RoutingPolicy()
    hard = PageEvidence(features=with_(component_height_cv=1.0, color_saturation=0.09))
    easy = PageEvidence(features=CLEAN)
    uncapped = plan_document([easy], policy, PlanContext(available=frozenset(LOCAL))).routes[0]
    plan = plan_document(
        [easy, hard, hard], policy, PlanContext(available=frozenset(LOCAL), max_credits=7)
    )
    capped = plan.routes
    assert plan.credits == sum(r.credits for r in capped) <= 7
    assert plan.fits(7)
    assert capped[0] == uncapped
    assert all(r.capped and "max_credits" in r.reason for r in capped[1:])


VLM_COMPLEX = msgspec.structs.replace(
    RoutingPolicy(),
    tiers={
        **RoutingPolicy().tiers,
        "complex": msgspec.convert(
            {"credits": 5, "providers": ["vlm", "rapidocr"]},
            type=type(RoutingPolicy().tiers["complex"]),
        ),
    },
)
HANDWRITTEN = with_(component_height_cv=1.0, color_saturation=0.09)


def test_reason_names_each_term_of_the_score_with_its_feature_value() -> None:
    route = choose_route(with_(contrast=0.3, text_height_px=9.0), RoutingPolicy(), available=LOCAL)
    assert route.reason.startswith(f"complexity {route.complexity_score:.1f} (")
    assert "small text +1.3 at 9 px glyphs" in route.reason
    assert "low contrast +1.1 at contrast 0.30" in route.reason
    assert choose_route(CLEAN, RoutingPolicy(), available=LOCAL).reason.startswith(
        "complexity 0.0 (no difficulty measured)"
    )


def test_vertical_lines_turn_the_page_upright_first_and_say_why() -> None:
    route = choose_route(with_(vertical_text=0.8), RoutingPolicy(), available=LOCAL)
    assert route.upright_first
    assert "vertical_text 0.80" in route.reason
    assert not choose_route(
        with_(vertical_text=0.8), RoutingPolicy(), available=LOCAL, orientation=False
    ).upright_first
    assert not choose_route(CLEAN, RoutingPolicy(), available=LOCAL).upright_first


def test_allow_remote_false_keeps_remote_providers_out_and_says_so() -> None:
    everything = LOCAL | {"vlm"}
    allowed = choose_route(
        HANDWRITTEN, VLM_COMPLEX, available=everything, remote=frozenset({"vlm"})
    )
    assert allowed.providers == ["vlm", "rapidocr"]
    local = choose_route(
        HANDWRITTEN,
        VLM_COMPLEX,
        available=everything,
        remote=frozenset({"vlm"}),
        allow_remote=False,
    )
    assert local.providers == ["rapidocr"]
    assert "remote providers (vlm) are not allowed" in local.reason


def test_a_provider_unavailable_now_is_skipped_and_named() -> None:
    """A remote provider whose breaker is open is not among the available ones at submit."""
    route = choose_route(HANDWRITTEN, VLM_COMPLEX, available=LOCAL, remote=frozenset({"vlm"}))
    assert (route.tier, route.credits, route.providers) == (Tier.COMPLEX, 5, ["rapidocr"])
    assert "vlm not available now" in route.reason


def test_forced_provider_reads_every_page_at_the_flat_price() -> None:
    pages = [PageEvidence(), PageEvidence(features=HANDWRITTEN)]
    plan = plan_document(
        pages,
        RoutingPolicy(),
        PlanContext(available=frozenset(LOCAL), forced_provider="tesseract", forced_credits=2),
    )
    assert [(r.tier, r.credits, r.providers) for r in plan.routes] == [
        (Tier.SIMPLE, 2, ["tesseract"])
    ] * 2
    assert plan.credits == 4


def test_plan_tiers_lower_a_page_and_name_the_plan() -> None:
    plan = plan_document(
        [PageEvidence(features=HANDWRITTEN)],
        RoutingPolicy(),
        PlanContext(
            available=frozenset(LOCAL),
            plan="free",
            allowed_tiers=frozenset({Tier.SIMPLE, Tier.MEDIUM}),
        ),
    )
    route = plan.routes[0]
    assert (route.tier, route.credits, route.capped) == (Tier.MEDIUM, 3, True)
    assert route.reason.endswith("lowered to medium by the free plan, which allows simple, medium")


def test_a_page_that_could_not_be_measured_is_simple_and_says_why() -> None:
    route = plan_document(
        [PageEvidence(unassessed="page_render_failed: no area")],
        RoutingPolicy(),
        PlanContext(available=frozenset(LOCAL)),
    ).routes[0]
    assert (route.tier, route.credits) == (Tier.SIMPLE, 1)
    assert "could not be assessed (page_render_failed: no area)" in route.reason


def test_max_credits_below_the_simple_tier_does_not_fit() -> None:
    plan = plan_document(
        [PageEvidence(features=CLEAN)] * 3,
        RoutingPolicy(),
        PlanContext(available=frozenset(LOCAL), max_credits=2),
    )
    assert plan.credits == 3
    assert not plan.fits(2)


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


def test_a_page_thinner_than_two_pixels_scores_without_nan(
    corpus: Path, tmp_path: Path, settings: Settings
) -> None:
    """A 5000 x 3 strip cut from a real text line: its scoring copy is 1 px high."""
    from PIL import Image

    line = Image.open(corpus / "a_clean_printed/uw3_lines/010004.bin.png").convert("RGB")
    strip = tmp_path / "strip.png"
    line.resize((5000, 3)).save(strip)
    kind = detect_kind(strip.read_bytes())
    assert kind is not None
    evidence = assess_page(strip, kind, 1, settings)
    assert evidence.features is not None
    values = msgspec.structs.asdict(evidence.features)
    assert all(np.isfinite(v) for v in values.values()), values
    route = plan_page(evidence, settings)
    assert 0.0 <= route.complexity_score <= 10.0


def test_histogram_median_matches_numpy() -> None:
    values = np.random.default_rng(7).integers(0, 256, size=1001).astype(np.uint8)
    for sample in (values, values[:1000], values[:1], values[:2]):
        histogram = np.bincount(sample, minlength=256)
        assert scoring_features._median(histogram, 0.0) == float(np.median(sample))
    assert scoring_features._median(np.zeros(256, dtype=np.int64), 42.0) == 42.0


@pytest.mark.parametrize(
    ("stats", "trusted"),
    [
        (None, False),
        (TextLayerStats(real_ratio=1.0, coverage=0.95, image_cover=0.0), True),
        (TextLayerStats(real_ratio=0.2, coverage=0.95, image_cover=0.0), False),
        (TextLayerStats(real_ratio=1.0, coverage=0.3, image_cover=0.0), False),
        (TextLayerStats(real_ratio=1.0, coverage=0.95, image_cover=1.0), False),
    ],
)
def test_text_layer_trust(stats: TextLayerStats | None, trusted: bool) -> None:
    assert text_layer_trusted(stats, TextLayerPolicy())[0] is trusted


@pytest.mark.parametrize(
    ("text", "real"), [("The Crazy Ones", 1.0), ('"7+%-', 0.0), ("", 0.0), ("مرحبا بالعالم", 1.0)]
)
def test_real_text_ratio(text: str, real: float) -> None:
    assert real_text_ratio(text) == real


def manifest(corpus: Path, category: str) -> list[dict[str, str]]:
    lines = (corpus / category / "manifest.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def route_of(
    corpus: Path, category: str, file: str, settings: Settings, page: int = 1
) -> PageRoute:
    path = corpus / category / file
    kind = detect_kind(path.read_bytes()[:2048])
    assert kind is not None
    evidence = assess_page(path, kind, page, settings)
    return plan_page(evidence, settings)


def test_handwritten_pages_are_scored_complex(corpus: Path, settings: Settings) -> None:
    tiers = Counter(
        route_of(corpus, "e_handwriting", e["file"], settings).tier
        for e in manifest(corpus, "e_handwriting")
    )
    assert tiers == {Tier.COMPLEX: len(manifest(corpus, "e_handwriting"))}


# PDFium decodes these wrongly; they go to OCR (tests/test_text_layer.py)
WRONGLY_DECODED = {
    "born_digital/google-doc-document.pdf": "emoji flags PDFium gives no text for",
    "born_digital/habibi.pdf": "an Arabic run PDFium decodes to Greek-block glyph codes",
}


def test_born_digital_pages_go_to_the_text_layer(corpus: Path, settings: Settings) -> None:
    for entry in manifest(corpus, "f_pdfs"):
        if entry["kind"].startswith("born_digital") and entry["file"] not in WRONGLY_DECODED:
            route = route_of(corpus, "f_pdfs", entry["file"], settings)
            assert route.providers == [TEXT_LAYER], (entry["file"], route.reason)
            assert route.credits == 1


@pytest.mark.parametrize(
    "file",
    [
        "odd_encoding/truetype_font_nomapping.pdf",
        "pypdf/Seige_of_Vicksburg_Sample_OCR.pdf",
        "ocrmypdf/graph_ocred.pdf",
    ],
)
def test_untrustworthy_text_layers_go_to_ocr(corpus: Path, settings: Settings, file: str) -> None:
    route = route_of(corpus, "f_pdfs", file, settings)
    assert TEXT_LAYER not in route.providers
    assert "text layer" in route.reason


@pytest.fixture(scope="module")
def engine(settings: Settings) -> PageEngine:
    return PageEngine(settings)


def chars(text: str) -> Counter[str]:
    """Characters without whitespace, ligatures unfolded (NFKC): 'ﬁ' is 'fi'."""
    return Counter(c for c in unicodedata.normalize("NFKC", text) if not c.isspace())


@pytest.mark.parametrize(
    "file", ["crazyones.pdf", "002-trivial-libre-office-writer.pdf", "tracemonkey.pdf"]
)
def test_text_layer_output_matches_the_text_layer(
    corpus: Path, engine: PageEngine, file: str
) -> None:
    path = corpus / "f_pdfs/born_digital" / file
    result = engine.read_page(PageTask(path=str(path), kind=DocumentKind.PDF, page_number=1))
    assert result.pipeline_metadata is not None
    assert result.pipeline_metadata.provider_used == TEXT_LAYER
    truth_file = next(path.parent.glob(path.stem + ".*.txt"))
    truth = chars(truth_file.read_text().split("\f")[0])
    got = chars("\n".join(b.text for b in result.content_blocks))
    overlap = sum((truth & got).values())
    assert overlap / max(sum(truth.values()), sum(got.values())) >= 0.995


@pytest.mark.parametrize(
    ("rotated", "upright"),
    [
        (
            "a_clean_printed/tesseract/phototest-rotated-180.png",
            "a_clean_printed/tesseract/phototest.tif",
        ),
        ("f_pdfs/ocrmypdf/rotated_skew.pdf", "f_pdfs/ocrmypdf/skew.pdf"),
    ],
)
def test_rotated_copies_read_like_the_upright_page(
    corpus: Path, engine: PageEngine, rotated: str, upright: str
) -> None:
    truth_for = {
        "phototest": "a_clean_printed/tesseract/phototest.gt.txt",
        "skew": "f_pdfs/ocrmypdf/linn.reference.txt",
    }
    truth = (corpus / truth_for[Path(upright).stem]).read_text()
    scores = []
    for file in (rotated, upright):
        path = corpus / file
        kind = detect_kind(path.read_bytes()[:2048])
        assert kind is not None
        result = engine.read_page(PageTask(path=str(path), kind=kind, page_number=1))
        scores.append(bag_of_words_f1(truth, "\n".join(b.text for b in result.content_blocks)))
    assert scores[0] >= scores[1] - 0.02, scores


def test_rotated_scan_reason_names_its_features(corpus: Path, settings: Settings) -> None:
    """A rotated scan's reason once read only "complexity 3.3"."""
    route = route_of(corpus, "f_pdfs", "ocrmypdf/rotated_skew.pdf", settings)
    assert route.features is not None
    assert " at " in route.reason.split(";")[0], route.reason  # score terms with their values
    if route.features.vertical_text >= settings.routing.orientation.min_vertical_text:
        assert route.upright_first
        assert "lines run vertically" in route.reason


@pytest.mark.parametrize(
    "file", ["crazyones.pdf", "002-trivial-libre-office-writer.pdf", "tracemonkey.pdf"]
)
def test_a_page_routed_to_its_text_layer_is_answered_without_rendering_alike(
    corpus: Path, engine: PageEngine, file: str
) -> None:
    """Submit stored the text-layer route: the worker computes the page's frame instead of
    rendering it, and answers exactly what the rendered path answers."""
    path = str(corpus / "f_pdfs/born_digital" / file)
    rendered = engine.read_page(PageTask(path=path, kind=DocumentKind.PDF, page_number=1))
    assert rendered.pipeline_metadata is not None
    assert rendered.pipeline_metadata.provider_used == TEXT_LAYER
    evidence = assess_page(Path(path), DocumentKind.PDF, 1, engine.settings)
    route = plan_page(evidence, engine.settings)
    framed = engine.read_page(
        PageTask(path=path, kind=DocumentKind.PDF, page_number=1, route=route)
    )
    assert framed.document_metadata == rendered.document_metadata
    assert framed.content_blocks == rendered.content_blocks
    assert framed.raw_markdown == rendered.raw_markdown


@pytest.mark.parametrize("degrees", [90, 270])
def test_a_sideways_form_is_read_upright_where_orientation_detection_is_unsure(
    corpus: Path, engine: PageEngine, tmp_path: Path, degrees: int
) -> None:
    """Tesseract's orientation detection gives this form no answer (confidence 0) turned either
    way; its vertical lines put the route on turning it, and the better quarter turn reads."""
    from PIL import Image

    source = corpus / "b_forms/funsd/82254765.png"
    turned = tmp_path / f"turned_{degrees}.png"
    Image.open(source).convert("RGB").rotate(degrees, expand=True).save(turned)

    def read(path: Path) -> tuple[str, int]:
        result = engine.read_page(PageTask(path=str(path), kind=DocumentKind.PNG, page_number=1))
        assert result.document_metadata is not None
        text = "\n".join(b.text for b in result.content_blocks)
        return text, result.document_metadata.rotation_deg

    upright_text, _ = read(source)
    turned_text, rotation = read(turned)
    assert rotation in (90, 270)
    assert bag_of_words_f1(upright_text, turned_text) >= 0.85


def test_an_engine_no_route_names_loads_on_the_first_page_that_asks_for_it(
    corpus: Path, settings: Settings
) -> None:
    assert "ppocrv4" in settings.providers
    assert "ppocrv4" not in settings.routed_providers()
    engine = PageEngine(settings)
    loaded = {name for name, device in engine.describe().items() if device != "not loaded"}
    assert loaded == settings.routed_providers()  # loaded at start
    assert engine.describe()["ppocrv4"] == "not loaded"
    path = corpus / "a_clean_printed/tesseract/phototest.tif"
    route = PageRoute(
        tier=Tier.SIMPLE,
        credits=1,
        providers=["ppocrv4"],
        complexity_score=0.0,
        reason="asked for",
        escalate=False,
        best_of_chain=False,
    )
    task = PageTask(path=str(path), kind=DocumentKind.TIFF, page_number=1, route=route)
    result = engine.read_page(task)
    assert result.pipeline_metadata is not None
    assert result.pipeline_metadata.provider_used == "ppocrv4"
    assert "12 point text" in " ".join(b.text for b in result.content_blocks)
    assert engine.describe()["ppocrv4"] in ("cpu", "cuda")  # loaded now
