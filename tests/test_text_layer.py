"""Text layers PDFium decodes wrongly: detected at assessment, and their pages read by OCR."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from gateway.config import Settings, load_settings
from gateway.work.assess import assess_page, plan_page
from gateway.work.documents import DocumentKind
from gateway.work.textlayer import read_text_layer, unmapped_in_runs
from router.plan import text_layer_trusted
from router.policy import TEXT_LAYER, TextLayerPolicy, TextLayerStats
from tests.support.gateway_process import REPO

CLEAN = TextLayerStats(real_ratio=1.0, coverage=0.95, image_cover=0.0)


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(REPO / "config.yaml", env={})


def flags(text: str, unmapped: str) -> list[bool]:
    """Per character of `text`: True where PDFium would report it unmapped."""
    return [c in unmapped for c in text]


@pytest.mark.parametrize(
    ("text", "unmapped", "count"),
    [
        # habibi.pdf: an Arabic word decoded to its glyph codes, which fall in the Greek block
        (" يبيبَح \u03f2\u0392\u03f4\u0392\x03habibi يبيبَح", "\u03f2\u0392\u03f4\x03", 5),
        # us-005.pdf: bullets of a symbol font, one per line, decode to U+0099
        ("5 - 3 \r\n\x99 Assisting in marketing\r\n\x99 advertising", "\x99", 0),
        # tracemonkey.pdf: the circle of a (c) sign decodes to U+000D
        ("Copyright \rc 2009 ACM", "\r", 0),
        ("a word of glyph codes at the end: \x03\x04", "\x03\x04", 2),
        ("", "", 0),
        ("clean text", "", 0),
    ],
    ids=[
        "habibi-greek-run",
        "lone-bullets",
        "lone-copyright-circle",
        "run-at-end",
        "empty",
        "clean",
    ],
)
def test_unmapped_characters_count_only_in_runs(text: str, unmapped: str, count: int) -> None:
    """A run of unmapped characters is a word read wrong; a lone one is a lost symbol."""
    marks = flags(text, unmapped)
    assert unmapped_in_runs(marks.__getitem__, len(marks)) == count


@pytest.mark.parametrize("start", range(6))
@pytest.mark.parametrize("length", range(1, 5))
def test_runs_are_found_wherever_they_start(start: int, length: int) -> None:
    """Only every other character is asked about, yet every run of two or more is counted."""
    marks = [start <= i < start + length for i in range(12)]
    asked: set[int] = set()

    def is_unmapped(i: int) -> bool:
        asked.add(i)
        return marks[i]

    assert unmapped_in_runs(is_unmapped, len(marks)) == (length if length >= 2 else 0)
    assert len(asked) <= len(marks) // 2 + length + 1


def test_runs_counted_as_if_every_character_were_asked() -> None:
    rng = random.Random(17)
    for _ in range(300):
        marks = [rng.random() < 0.4 for _ in range(rng.randrange(0, 30))]
        runs = [len(list(group)) for mark, group in itertools.groupby(marks) if mark]
        expected = sum(n for n in runs if n >= 2)
        assert unmapped_in_runs(marks.__getitem__, len(marks)) == expected, marks


@pytest.mark.parametrize(
    ("stats", "reason"),
    [
        (
            TextLayerStats(real_ratio=1.0, coverage=0.95, image_cover=0.0, unmapped_chars=5),
            "the text layer has 5 characters PDFium could not map to Unicode",
        ),
        (
            TextLayerStats(real_ratio=1.0, coverage=0.95, image_cover=0.0, dropped_runs=4),
            "the text layer drops 4 runs of text drawn on the page",
        ),
    ],
)
def test_wrongly_decoded_layers_are_refused_with_their_reason(
    stats: TextLayerStats, reason: str
) -> None:
    trusted, why = text_layer_trusted(stats, TextLayerPolicy())
    assert not trusted
    assert why.startswith(reason)
    assert text_layer_trusted(CLEAN, TextLayerPolicy())[0]


def test_the_thresholds_come_from_the_policy() -> None:
    stats = TextLayerStats(
        real_ratio=1.0, coverage=0.95, image_cover=0.0, unmapped_chars=5, dropped_runs=4
    )
    policy = TextLayerPolicy(max_unmapped_chars=5, max_dropped_runs=4)
    assert text_layer_trusted(stats, policy)[0]


@pytest.mark.parametrize(
    ("file", "reason"),
    [
        ("habibi.pdf", "the text layer has 5 characters PDFium could not map to Unicode"),
        ("google-doc-document.pdf", "the text layer drops 4 runs of text drawn on the page"),
    ],
)
def test_pages_pdfium_decodes_wrongly_go_to_ocr(
    corpus: Path, settings: Settings, file: str, reason: str
) -> None:
    path = corpus / "f_pdfs/born_digital" / file
    route = plan_page(assess_page(path, DocumentKind.PDF, 1, settings), settings)
    assert TEXT_LAYER not in route.providers
    assert route.providers
    assert reason in route.reason


@pytest.mark.parametrize(
    ("file", "page"),
    [
        ("f_pdfs/born_digital/crazyones.pdf", 1),
        ("f_pdfs/born_digital/tracemonkey.pdf", 1),  # a lone unmapped sign: the (c)
        ("d_tables/icdar2013/us-005.pdf", 1),  # five lone unmapped bullets
        ("d_tables/tabula/us-020.pdf", 1),  # a heading drawn twice (fake bold)
    ],
)
def test_clean_born_digital_pages_keep_their_text_layer(
    corpus: Path, settings: Settings, file: str, page: int
) -> None:
    route = plan_page(assess_page(corpus / file, DocumentKind.PDF, page, settings), settings)
    assert route.providers == [TEXT_LAYER], route.reason


def test_a_run_drawn_twice_is_not_a_dropped_run(corpus: Path) -> None:
    """PDFium keeps the text of one copy of a heading drawn twice over itself (fake bold); the
    other copy gives no text but is not text lost."""
    layer = read_text_layer(
        corpus / "d_tables/tabula/argentina_diputados_voting_record.pdf", 0, 72, check_glyphs=True
    )
    assert layer is not None
    assert (layer.dropped_runs, layer.unmapped_chars) == (0, 0)


def test_measured_counts_of_the_known_bad_pages(corpus: Path) -> None:
    folder = corpus / "f_pdfs/born_digital"
    habibi = read_text_layer(folder / "habibi.pdf", 0, 72, check_glyphs=True)
    google = read_text_layer(folder / "google-doc-document.pdf", 0, 72, check_glyphs=True)
    assert habibi is not None
    assert google is not None
    assert (habibi.unmapped_chars, habibi.dropped_runs) == (5, 0)
    assert (google.unmapped_chars, google.dropped_runs) == (0, 4)  # the four emoji flags
