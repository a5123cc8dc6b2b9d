"""Table quality measures. Pure functions, no I/O.

- `adjacency_f1`: the ICDAR 2013 table competition's measure. Each non-empty cell of a grid is
  related to its nearest non-empty neighbour to the right (same row) and below (same column);
  a relation is (text, neighbour's text, direction) with the texts normalized (NFKC, lower case,
  letters and digits only). The relations of the reading and of the ground truth are compared
  as multisets. A grid has a spanning cell's text in its top-left slot and its other slots empty
  (the form of the `d_tables` CSVs).
- `teds`: Tree-Edit-Distance-based Similarity (Zhong et al. 2020, PubTabNet) of two HTML
  tables: 1 - the tree edit distance between them / the node count of the larger tree, where a
  cell's relabelling costs 1 when the tags or spans differ and else the normalized Levenshtein
  distance of the contents. The tree edit distance is APTED's (`apted`, the package PubTabNet's
  own TEDS code uses).
- `match_tables`: pairs each ground-truth table with the read table that scores best on it.
"""

from __future__ import annotations

import html.parser
import re
import unicodedata
from collections.abc import Callable, Sequence

from rapidfuzz.distance import Levenshtein

from benchmarks.metrics import multiset_f1

Grid = Sequence[Sequence[str]]
_NOT_WORD = re.compile(r"[\W_]+")


def normalize_cell(text: str) -> str:
    """NFKC, lower case, nothing but letters and digits (whitespace and punctuation dropped)."""
    return _NOT_WORD.sub("", unicodedata.normalize("NFKC", text).lower())


def adjacency_relations(grid: Grid) -> list[tuple[str, str, str]]:
    """(cell, neighbour, "right" | "below") for each non-empty cell's nearest non-empty
    neighbours, texts normalized."""
    cells = [[normalize_cell(c) for c in row] for row in grid]
    width = max((len(row) for row in cells), default=0)
    cells = [row + [""] * (width - len(row)) for row in cells]
    relations = []
    for r, row in enumerate(cells):
        for c, text in enumerate(row):
            if not text:
                continue
            right = next((t for t in row[c + 1 :] if t), None)
            if right is not None:
                relations.append((text, right, "right"))
            below = next((cells[k][c] for k in range(r + 1, len(cells)) if cells[k][c]), None)
            if below is not None:
                relations.append((text, below, "below"))
    return relations


def adjacency_f1(reference: Grid, reading: Grid) -> float:
    """F1 of the adjacency relations of `reading` against `reference` (multisets)."""
    return multiset_f1(
        ["\x1f".join(r) for r in adjacency_relations(reference)],
        ["\x1f".join(r) for r in adjacency_relations(reading)],
    )


def match_tables(
    references: Sequence[Grid], readings: Sequence[Grid], score: Callable[[Grid, Grid], float]
) -> list[tuple[int, int | None, float]]:
    """(reference index, reading index or None, score) per reference: greedy, best pair
    first, each reading used once; a reference left without one scores 0."""
    pairs = sorted(
        (
            (score(ref, got), i, j)
            for i, ref in enumerate(references)
            for j, got in enumerate(readings)
        ),
        reverse=True,
    )
    matched: dict[int, tuple[int | None, float]] = {}
    used: set[int] = set()
    for value, i, j in pairs:
        if i in matched or j in used or value <= 0:
            continue
        matched[i] = (j, value)
        used.add(j)
    return [(i, *matched.get(i, (None, 0.0))) for i in range(len(references))]


class _Node:
    __slots__ = ("children", "colspan", "content", "rowspan", "tag")

    def __init__(self, tag: str, colspan: int = 1, rowspan: int = 1) -> None:
        self.tag = tag
        self.colspan = colspan
        self.rowspan = rowspan
        self.content = ""
        self.children: list[_Node] = []


class _TableParser(html.parser.HTMLParser):
    """The first <table> as a tree of table, thead/tbody, tr, td nodes; a cell's content is
    its text, inline tags (<b>, <sup>, ...) kept as their names, as PubTabNet's TEDS does."""

    STRUCTURE = ("table", "thead", "tbody", "tr", "td", "th")

    def __init__(self, keep_inline_tags: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.root: _Node | None = None
        self.stack: list[_Node] = []
        self.keep_inline_tags = keep_inline_tags

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.STRUCTURE:
            if tag == "table" and self.root is not None:
                return
            values = dict(attrs)
            node = _Node(
                "td" if tag == "th" else tag,
                colspan=int(values.get("colspan") or 1),
                rowspan=int(values.get("rowspan") or 1),
            )
            if self.stack:
                self.stack[-1].children.append(node)
            else:
                self.root = node
            self.stack.append(node)
        elif self.keep_inline_tags and self.stack and self.stack[-1].tag == "td":
            self.stack[-1].content += f"<{tag}>"

    def handle_endtag(self, tag: str) -> None:
        if tag in self.STRUCTURE:
            tag = "td" if tag == "th" else tag
            while self.stack:
                if self.stack.pop().tag == tag:
                    break
        elif self.keep_inline_tags and self.stack and self.stack[-1].tag == "td":
            self.stack[-1].content += f"</{tag}>"

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1].tag == "td":
            self.stack[-1].content += data


def parse_table_html(text: str, keep_inline_tags: bool = True) -> _Node | None:
    parser = _TableParser(keep_inline_tags)
    parser.feed(text)
    parser.close()
    return parser.root


def _count(node: _Node) -> int:
    return 1 + sum(_count(child) for child in node.children)


def _structure_only(node: _Node) -> None:
    node.content = ""
    for child in node.children:
        _structure_only(child)


def teds(reference_html: str, reading_html: str, structure_only: bool = False) -> float:
    """TEDS of two HTML tables (1.0: identical trees); 0 when the reading has no table."""
    from apted import APTED, Config

    class _Costs(Config):  # type: ignore[misc]
        def rename(self, a: _Node, b: _Node) -> float:
            if a.tag != b.tag or a.colspan != b.colspan or a.rowspan != b.rowspan:
                return 1.0
            if a.tag != "td":
                return 0.0
            if not a.content and not b.content:
                return 0.0
            return float(Levenshtein.normalized_distance(a.content, b.content))

        def children(self, node: _Node) -> list[_Node]:
            return node.children

    reference = parse_table_html(reference_html)
    reading = parse_table_html(reading_html)
    if reference is None or reading is None:
        return 0.0
    for tree in (reference, reading):
        if structure_only:
            _structure_only(tree)
        else:
            _strip_contents(tree)
    nodes = max(_count(reference), _count(reading))
    distance = APTED(reference, reading, _Costs()).compute_edit_distance()
    return max(0.0, 1.0 - float(distance) / nodes)


def _strip_contents(node: _Node) -> None:
    node.content = " ".join(node.content.split())
    for child in node.children:
        _strip_contents(child)


_TABLE_HTML = re.compile(r"<table>.*?</table>", re.DOTALL)


def html_grid(text: str) -> list[list[str]]:
    """The grid of an HTML table: a spanning cell's text in its top-left slot, other slots
    empty; inline tags dropped."""
    root = parse_table_html(text, keep_inline_tags=False)
    if root is None:
        return []
    rows: list[_Node] = []

    def walk(node: _Node) -> None:
        for child in node.children:
            if child.tag == "tr":
                rows.append(child)
            else:
                walk(child)

    walk(root)
    grid: dict[tuple[int, int], str] = {}
    taken: set[tuple[int, int]] = set()
    for r, row in enumerate(rows):
        c = 0
        for cell in row.children:
            while (r, c) in taken:
                c += 1
            grid[(r, c)] = " ".join(cell.content.split())
            taken.update((r + i, c + j) for i in range(cell.rowspan) for j in range(cell.colspan))
            c += cell.colspan
    width = max((c for _, c in taken), default=-1) + 1
    return [[grid.get((r, c), "") for c in range(width)] for r in range(len(rows))]


def html_tables(markdown: str) -> list[list[list[str]]]:
    """The HTML tables in a markdown text (where cells span, the markdown gives a table so)."""
    return [html_grid(match) for match in _TABLE_HTML.findall(markdown)]
