"""Blocks, reading order and markdown from engine lines: pure function tables."""

from __future__ import annotations

from gateway.work.layout import build_blocks, global_confidence, to_markdown
from providers.types import TextLine, quad_from_box

W, H = 1000, 1000


def line(
    text: str, left: float, top: float, right: float, height: float = 20, confidence: float = 0.9
) -> TextLine:
    return TextLine(
        text=text, confidence=confidence, quad=quad_from_box(left, top, right, top + height)
    )


def column(prefix: str, left: float, right: float, top: float, rows: int) -> list[TextLine]:
    return [line(f"{prefix}{i}", left, top + 26 * i, right) for i in range(rows)]


def test_two_columns_read_column_by_column() -> None:
    lines = [
        line("Title", 100, 20, 900, height=40),
        *column("L", 50, 470, 100, 6),
        *column("R", 530, 950, 100, 6),
    ]
    # engines list lines row by row across both columns
    shuffled = sorted(lines, key=lambda ln: (ln.quad[0][1], ln.quad[0][0]))
    blocks = build_blocks(shuffled, W, H)
    order = [ln.text for b in blocks for ln in b.lines]
    assert order == ["Title"] + [f"L{i}" for i in range(6)] + [f"R{i}" for i in range(6)]
    assert blocks[0].type == "title"
    assert to_markdown(blocks).startswith("## Title\n\n")


def test_key_value_rows_are_not_split_into_columns() -> None:
    """Short labels and values aligned on rows are a form, not two text columns."""
    lines = []
    for i, (key, value) in enumerate(
        [("Name:", "Ada Lovelace"), ("Date:", "1843"), ("City:", "London"), ("Total:", "9.00")]
    ):
        lines += [line(key, 50, 100 + 26 * i, 150), line(value, 600, 100 + 26 * i, 760)]
    blocks = build_blocks(lines, W, H)
    assert [ln.text for b in blocks for ln in b.lines] == [
        "Name: Ada Lovelace",
        "Date: 1843",
        "City: London",
        "Total: 9.00",
    ]


def test_paragraph_gap_starts_a_new_block() -> None:
    lines = [*column("a", 50, 900, 100, 3), *column("b", 50, 900, 300, 2)]
    blocks = build_blocks(lines, W, H)
    assert [b.text for b in blocks] == ["a0\na1\na2", "b0\nb1"]
    assert [b.block_id for b in blocks] == [1, 2]


def test_geometry_is_relative_and_clamped() -> None:
    blocks = build_blocks([line("edge", -5, 990, 1010, height=30)], W, H)
    geometry = blocks[0].geometry
    assert geometry.x == 0.0
    assert geometry.y == 0.99
    assert geometry.x + geometry.width <= 1.0
    assert geometry.y + geometry.height <= 1.0


def test_confidence_is_weighted_by_characters() -> None:
    blocks = build_blocks(
        [
            line("long line of text", 50, 100, 900, confidence=1.0),
            line("x", 50, 126, 80, confidence=0.0),
        ],
        W,
        H,
    )
    assert global_confidence(blocks) == round(17 / 18, 4)


def test_blank_page_has_no_blocks() -> None:
    assert build_blocks([line("   ", 0, 0, 10)], W, H) == []
    assert to_markdown([]) == ""
