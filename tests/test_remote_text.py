"""Pure layers of the remote providers: markdown to lines, line location, upstream pages."""

from __future__ import annotations

import msgspec
import pytest

from providers.errors import UpstreamPageError
from providers.remote_gateway import UpstreamJob, page_from_job
from providers.types import TextLine, quad_bounds, quad_from_box
from providers.vision_lines import MarkdownLine, locate_lines, parse_markdown, strip_fences


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("```markdown\n# Title\ntext\n```", "# Title\ntext"),
        ("```\nplain\n```\n", "plain"),
        ("no fence", "no fence"),
        ("``` md\nA\n```", "``` md\nA\n```"),  # not a fence opener: left alone
    ],
)
def test_one_code_fence_around_the_reply_is_stripped(reply: str, expected: str) -> None:
    assert strip_fences(reply) == expected


@pytest.mark.parametrize(
    ("markdown", "texts"),
    [
        ("# Invoice 42", ["Invoice 42"]),
        (
            "Dear **customer**, see [our site](http://x) and `code`.",
            ["Dear customer, see our site and code."],
        ),
        ("- one\n* two\n+ three\n1. four", ["one", "two", "three", "1. four"]),
        ("> quoted", ["quoted"]),
        ("![logo](logo.png) Acme", ["Acme"]),
        ("snake_case_name and *em* and _em_", ["snake_case_name and em and em"]),
        (r"price \*not bold\* 5 \| 6", ["price *not bold* 5 | 6"]),
        ("AT&amp;T<br>call", ["AT&T call"]),
        ("line\n\n---\n\nnext", ["line", "next"]),
    ],
)
def test_markup_is_removed_from_lines(markdown: str, texts: list[str]) -> None:
    assert [line.text for line in parse_markdown(markdown)] == texts


def test_pipe_table_rows_become_cells_of_one_row() -> None:
    lines = parse_markdown("Items\n\n| Qty | Price |\n|---|---:|\n| 2 | 3.50 |\n\nTotal")
    assert [(ln.text, ln.row, ln.cell, ln.cells) for ln in lines] == [
        ("Items", 0, 0, 1),
        ("Qty", 1, 0, 2),
        ("Price", 1, 1, 2),
        ("2", 2, 0, 2),
        ("3.50", 2, 1, 2),
        ("Total", 3, 0, 1),
    ]
    assert [ln.paragraph for ln in lines] == [0, 1, 1, 1, 1, 2]


def test_html_tables_become_pipe_rows() -> None:
    lines = parse_markdown(
        "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>"
    )
    assert [(ln.text, ln.row) for ln in lines] == [("a", 0), ("b", 0), ("1", 1), ("2", 1)]


def test_paragraphs_and_headings_are_numbered() -> None:
    lines = parse_markdown("# Head\nfirst\nsecond\n\nthird")
    assert [(ln.text, ln.paragraph, ln.heading) for ln in lines] == [
        ("Head", 0, True),
        ("first", 1, False),
        ("second", 1, False),
        ("third", 2, False),
    ]


def detected(*rows: tuple[str, float, float, float, float]) -> list[TextLine]:
    return [TextLine(text=text, confidence=0.8, quad=quad_from_box(*box)) for text, *box in rows]


def md(*texts: str) -> list[MarkdownLine]:
    return [MarkdownLine(text=t, paragraph=i, row=i) for i, t in enumerate(texts)]


def boxes(lines: list[TextLine]) -> list[tuple[float, ...]]:
    return [tuple(round(v) for v in quad_bounds(line.quad)) for line in lines]


def test_a_paragraph_takes_the_union_of_the_visual_lines_it_contains() -> None:
    found = detected(
        ("The quick brown dog", 10, 10, 300, 30),
        ("jumped over the lazy fox.", 10, 35, 320, 55),
        ("Page 2", 500, 700, 560, 720),
    )
    lines, source = locate_lines(
        md("The quick brown dog jumped over the lazy fox.", "Page 2"), found, 600, 800
    )
    assert source == "detected"
    assert boxes(lines) == [(10, 10, 320, 55), (500, 700, 560, 720)]
    assert lines[0].text == "The quick brown dog jumped over the lazy fox."


def test_a_table_cell_takes_its_part_of_the_detected_row() -> None:
    found = detected(("Qty Price", 100, 50, 190, 70))  # 9 characters over 90 pixels
    lines, source = locate_lines(md("Price"), found, 600, 800)
    assert source == "detected"
    assert boxes(lines) == [(140, 50, 190, 70)]


def test_matching_ignores_case_and_punctuation_and_tolerates_ocr_slips() -> None:
    found = detected(
        ("TOTAL: 12,50 EUR", 0, 0, 100, 20), ("Thank yov for shopping", 0, 40, 100, 60)
    )
    _, source = locate_lines(md("Total 12.50 EUR", "Thank you for shopping!"), found, 200, 200)
    assert source == "detected"


def test_unlocated_lines_sit_between_their_located_neighbours() -> None:
    found = detected(("first line here", 0, 100, 200, 120), ("last line here", 0, 400, 200, 420))
    lines, source = locate_lines(
        md("first line here", "something unseen", "last line here"), found, 600, 800
    )
    assert source == "mixed"
    _, top, _, bottom = quad_bounds(lines[1].quad)
    assert 120 <= top < bottom <= 400


def test_without_detected_lines_lines_are_stacked_down_the_page_in_order() -> None:
    lines, source = locate_lines(
        parse_markdown("# Title\n\nfirst\nsecond\n\n| a | b |"), [], 600, 800
    )
    assert source == "page"
    tops = [quad_bounds(line.quad)[1] for line in lines]
    assert tops == sorted(tops)
    assert all(0 <= v <= 800 for line in lines for _, v in line.quad)
    title, first, second, cell_a, cell_b = (quad_bounds(line.quad) for line in lines)
    assert title[3] - title[1] > 1.5 * (first[3] - first[1])  # the layout's title rule
    assert first[3] == pytest.approx(second[1])  # lines of a paragraph touch
    assert second[3] < cell_a[1]  # a blank band between paragraphs
    assert (cell_a[1], cell_a[2]) == (cell_b[1], cell_b[0])  # cells side by side on one row


def test_an_empty_answer_has_no_lines() -> None:
    assert locate_lines([], [], 600, 800) == ([], "page")


# --- Upstream gateway pages -------------------------------------------------------------------


def job(status: str, results: list[dict[str, object]], error: object = None) -> UpstreamJob:
    return msgspec.convert(
        {"id": "j1", "status": status, "results": results, "error": error, "page_count": 1},
        UpstreamJob,
    )


COMPLETED_PAGE = {
    "page_number": 1,
    "status": "completed",
    "raw_markdown": "Hello",
    "document_metadata": {
        "source_model": "tesseract-5",
        "dpi": 200.0,
        "global_confidence": 0.9,
        "page_dimensions": {"width": 1000, "height": 500},
    },
    "content_blocks": [
        {
            "block_id": 1,
            "type": "text",
            "text": "Hello",
            "confidence": 0.9,
            "geometry": {"x": 0.1, "y": 0.2, "width": 0.5, "height": 0.1},
            "lines": [
                {
                    "text": "Hello",
                    "confidence": 0.9,
                    "geometry": {"x": 0.1, "y": 0.2, "width": 0.5, "height": 0.1},
                }
            ],
        }
    ],
}


def test_relative_upstream_geometry_becomes_page_pixels() -> None:
    page = page_from_job(job("completed", [COMPLETED_PAGE]), 2000, 1000)
    assert page.model == "tesseract-5"
    assert (page.width, page.height) == (2000, 1000)
    assert [line.text for line in page.lines] == ["Hello"]
    assert quad_bounds(page.lines[0].quad) == pytest.approx((200, 200, 1200, 300))


def test_an_upstream_page_failure_names_the_upstream_code() -> None:
    failed = {
        "page_number": 1,
        "status": "failed",
        "document_metadata": None,
        "content_blocks": [],
        "error": {"code": "ocr_timeout", "message": "too slow"},
    }
    with pytest.raises(UpstreamPageError, match=r"\(ocr_timeout\): too slow"):
        page_from_job(job("failed", [failed], {"code": "all_pages_failed", "message": "m"}), 10, 10)


def test_a_cancelled_upstream_job_is_an_error() -> None:
    with pytest.raises(UpstreamPageError, match="cancelled"):
        page_from_job(job("cancelled", []), 10, 10)


def test_a_failed_upstream_job_without_a_page_names_its_code() -> None:
    with pytest.raises(UpstreamPageError, match="internal_error"):
        page_from_job(job("failed", [], {"code": "internal_error", "message": "boom"}), 10, 10)
