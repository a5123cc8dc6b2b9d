"""Handwriting per line (issue 16): real corpus pages read by the pipeline, each line marked."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from gateway.config import ConfigError, Settings, load_settings
from gateway.results import PageResult
from gateway.work.documents import DocumentKind
from gateway.work.pipeline import PageEngine, PageTask
from tests.support.gateway_process import CORPUS, REPO

WILL = CORPUS / "e_handwriting/testaments_de_poilus/TestamentsDePoilus_will_AN_0183-0.jpg"
PRINTED = CORPUS / "a_clean_printed/tesseract/phototest.tif"
FORM = CORPUS / "b_forms/funsd/83996357.png"  # typed answers, a signature, written codes
BORN_DIGITAL = CORPUS / "f_pdfs/born_digital/002-trivial-libre-office-writer.pdf"


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(REPO / "config.yaml", env={})


@pytest.fixture(scope="module")
def engine(settings: Settings) -> PageEngine:
    return PageEngine(settings)


def read(engine: PageEngine, path: Path, kind: DocumentKind) -> PageResult:
    return engine.read_page(PageTask(path=str(path), kind=kind, page_number=1))


def lines(page: PageResult) -> list[tuple[str, bool | None, float | None]]:
    return [
        (line.text, line.is_handwritten, line.handwriting_confidence)
        for block in page.content_blocks
        for line in block.lines
    ]


def test_a_handwritten_will_has_its_lines_and_blocks_marked_handwritten(
    engine: PageEngine,
) -> None:
    """Nearly every line of a handwritten page is handwritten, and so is every block of them."""
    page = read(engine, WILL, DocumentKind.JPEG)
    marked = lines(page)
    assert len(marked) >= 8
    handwritten = [text for text, flag, _ in marked if flag]
    assert len(handwritten) >= 0.9 * len(marked), marked
    assert all(conf is not None and 0.5 <= conf <= 1.0 for _, _, conf in marked)
    big = max(page.content_blocks, key=lambda b: len(b.lines))
    assert big.is_handwritten is True
    assert big.handwriting_confidence is not None
    assert big.handwriting_confidence > 0.5


def test_a_printed_page_has_no_line_marked_and_json_always_says_so(engine: PageEngine) -> None:
    """No line of a printed test page is handwritten; every line's JSON carries the flag."""
    page = read(engine, PRINTED, DocumentKind.TIFF)
    marked = lines(page)
    assert len(marked) >= 5
    assert [text for text, flag, _ in marked if flag is not False] == []
    assert all(conf is not None and conf > 0.5 for _, _, conf in marked)
    encoded = json.loads(msgspec.json.encode(page))
    for block in encoded["content_blocks"]:
        assert block["is_handwritten"] is False
        for line in block["lines"]:
            assert line["is_handwritten"] is False
            assert 0.5 < line["handwriting_confidence"] <= 1.0


def test_a_form_filled_in_by_hand_marks_the_signed_row_not_the_typed_answers(
    engine: PageEngine,
) -> None:
    """On a FUNSD form, the row where the initiator signed is marked handwritten; the printed
    labels and the typed answers beside them are not (a few lines at most are marked)."""
    marked = lines(read(engine, FORM, DocumentKind.PNG))
    flagged = [text for text, flag, _ in marked if flag]
    assert any("SIGNATURE OF INITIATOR" in text for text in flagged), marked
    assert len(flagged) <= 3, flagged
    printed = " ".join(text for text, flag, _ in marked if flag is False)
    for typed in ("COUPON CODE REGISTRATION FORM", "KELLI SCRUGGS", "OCTOBER 1999", "201,500"):
        assert typed in printed, marked


def test_a_text_layer_is_printed_for_certain(engine: PageEngine, settings: Settings) -> None:
    """A born-digital page answered from its own text layer: every line printed, confidence 1."""
    page = read(engine, BORN_DIGITAL, DocumentKind.PDF)
    assert page.pipeline_metadata is not None
    assert page.pipeline_metadata.provider_used == "pdf_text"
    marked = lines(page)
    assert marked
    assert {(flag, conf) for _, flag, conf in marked} == {(False, 1.0)}


def test_turned_off_leaves_the_flags_out(settings: Settings) -> None:
    """`pipeline.handwriting.enabled: false`: no line or block carries the flag."""
    off = msgspec.structs.replace(
        settings,
        pipeline=msgspec.structs.replace(
            settings.pipeline,
            handwriting=msgspec.structs.replace(settings.pipeline.handwriting, enabled=False),
        ),
    )
    page = read(PageEngine(off), BORN_DIGITAL, DocumentKind.PDF)
    encoded = json.loads(msgspec.json.encode(page))
    assert all(
        "is_handwritten" not in line for b in encoded["content_blocks"] for line in b["lines"]
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [("min_probability", "1.0"), ("page_weight", "-1"), ("part_max_confidence", "2")],
)
def test_bad_handwriting_settings_are_refused_at_start(
    tmp_path: Path, key: str, value: str
) -> None:
    """A threshold out of range stops the configuration from loading, naming it."""
    config = tmp_path / "config.yaml"
    config.write_text(f"pipeline:\n  handwriting:\n    {key}: {value}\n")
    with pytest.raises(ConfigError) as error:
        load_settings(config, env={})
    assert key in str(error.value)
