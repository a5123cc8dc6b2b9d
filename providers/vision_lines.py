"""A VLM's markdown answer turned into located lines.

`parse_markdown` reads the answer into plain lines (headings, bullets, table rows, HTML tables).
VLMs give no geometry: `locate_lines` finds it by matching each markdown line to the lines a
local engine detected on the same page. A markdown line takes the union of the detected lines
it contains (a paragraph spans several visual lines), or else the part of the one detected line
that contains it (a table cell inside a row). Lines found neither way are stacked in bands
between their located neighbours, or down the whole page when nothing was located. The source
says which happened: "detected" (every line located), "mixed", or "page" (none). A line's words
share its box in proportion to their characters: approximate, as a VLM places no words.
"""

from __future__ import annotations

import html
import re
import statistics
from collections import defaultdict
from collections.abc import Sequence
from typing import Literal

import msgspec
from rapidfuzz import fuzz

from providers.types import TextLine, quad_bounds, quad_from_box, words_by_share

GeometrySource = Literal["detected", "mixed", "page"]
MATCH_THRESHOLD = 80.0  # rapidfuzz partial_ratio needed to tie a markdown line to a detected one
MIN_MATCH_CHARS = 3  # detected lines shorter than this (after normalization) locate nothing
HEADING_UNITS = 1.6  # band height of a heading, in line heights (the layout's title rule)


# --- Markdown to lines ------------------------------------------------------------------------


class MarkdownLine(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    paragraph: int  # lines of one paragraph, list or table share it
    row: int  # the cells of one table row share it; any other line has its own
    cells: int = 1  # cells in this row
    cell: int = 0
    heading: bool = False


_FENCE = re.compile(r"^\s*```[\w-]*[ \t]*\n(.*?)\n?```\s*$", re.DOTALL)
_HEADING = re.compile(r"^#{1,6}\s+")
_BULLET = re.compile(r"^(?:[-*+]|>+)\s+")
_RULE = re.compile(r"^(?:[-*_]\s*){3,}$")
_TABLE_RULE = re.compile(r"^\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?$")
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_STRONG = re.compile(r"(\*\*|__)(.+?)\1")
_EMPHASIS = re.compile(
    r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])"
    r"|(?<!\w)_(?!\s)(.+?)(?<!\s)_(?!\w)"
)
_CODE = re.compile(r"`([^`]*)`")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~])")
_ESCAPED = 0xE000  # escaped ASCII characters hide in the private-use area meanwhile
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_TAG = re.compile(r"</?[A-Za-z][^>]*>")


def strip_fences(text: str) -> str:
    """The content of a reply wrapped in one ``` fence (```markdown and the like)."""
    match = _FENCE.match(text)
    return match.group(1) if match else text


def _html_tables_to_pipes(text: str) -> str:
    """HTML tables (several document VLMs answer them) as pipe rows; other tags dropped."""
    text = re.sub(r"<br\s*/?>", " ", text, flags=re.IGNORECASE)
    text = re.sub(r"<tr[^>]*>", "\n| ", text, flags=re.IGNORECASE)
    text = re.sub(r"</t[dh]>", " | ", text, flags=re.IGNORECASE)
    text = re.sub(r"</?table[^>]*>", "\n\n", text, flags=re.IGNORECASE)
    return _TAG.sub("", text)


def _inline(text: str) -> str:
    """Inline markup removed; backslash-escaped characters are kept, as text."""
    text = _ESCAPE.sub(lambda m: chr(_ESCAPED + ord(m.group(1))), text)
    text = _IMAGE.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _CODE.sub(r"\1", text)
    text = _STRONG.sub(r"\2", text)
    text = _EMPHASIS.sub(lambda m: m.group(1) or m.group(2), text)
    text = re.sub("[\ue000-\ue07f]", lambda m: chr(ord(m.group()) - _ESCAPED), text)
    return " ".join(html.unescape(text).split())


def parse_markdown(markdown: str) -> list[MarkdownLine]:
    """The text lines of a markdown transcription, markup removed, table rows split in cells."""
    lines: list[MarkdownLine] = []
    paragraph, row, gap, in_table = 0, 0, False, False
    for raw in _html_tables_to_pipes(strip_fences(markdown.strip())).splitlines():
        stripped = raw.strip()
        if not stripped or _RULE.match(stripped):
            gap = True
            continue
        is_row = stripped.startswith("|")
        if is_row and _TABLE_RULE.match(stripped):
            continue  # the rule under a table's header
        heading = bool(_HEADING.match(stripped))
        if lines and (gap or heading or lines[-1].heading or is_row != in_table):
            paragraph += 1
        gap, in_table = False, is_row
        if is_row:
            body = stripped.removeprefix("|").removesuffix("|")
            cells = [c for c in (_inline(c) for c in _CELL_SPLIT.split(body)) if c]
            lines.extend(
                MarkdownLine(text=cell, paragraph=paragraph, row=row, cells=len(cells), cell=i)
                for i, cell in enumerate(cells)
            )
        else:
            text = _inline(_BULLET.sub("", _HEADING.sub("", stripped)))
            if text:
                lines.append(MarkdownLine(text=text, paragraph=paragraph, row=row, heading=heading))
        row += 1
    return lines


# --- Geometry ---------------------------------------------------------------------------------

Box = tuple[float, float, float, float]


def _key(text: str) -> str:
    """Lower-cased words only: markup and punctuation differ between a VLM and a detector."""
    return " ".join(re.findall(r"\w+", text.lower()))


def _closeness(i: int, n: int, j: int, k: int) -> float:
    """How near two lines sit in their own reading orders (1 = same place): breaks ties
    between repeated texts."""
    return 1.0 - abs(i / max(n, 1) - j / max(k, 1))


def _owners(md_keys: list[str], det_keys: list[str]) -> dict[int, list[int]]:
    """Each detected line to the markdown line that contains it best."""
    owners: dict[int, list[int]] = defaultdict(list)
    for j, dk in enumerate(det_keys):
        if len(dk) < MIN_MATCH_CHARS:
            continue
        best: tuple[float, float, int] | None = None
        for i, mk in enumerate(md_keys):
            if len(mk) < 0.8 * len(dk):
                continue  # shorter than the detected line: it cannot contain it
            candidate = (
                fuzz.partial_ratio(dk, mk),
                _closeness(i, len(md_keys), j, len(det_keys)),
                i,
            )
            if best is None or candidate > best:
                best = candidate
        if best is not None and best[0] >= MATCH_THRESHOLD:
            owners[best[2]].append(j)
    return owners


def _inside(
    i: int, md_keys: list[str], det_keys: list[str], detected: Sequence[TextLine]
) -> Box | None:
    """The part of the detected line that best contains markdown line `i`, by character share."""
    mk = md_keys[i]
    best: tuple[float, float, Box] | None = None
    for j, dk in enumerate(det_keys):
        if not mk or len(dk) <= len(mk):
            continue
        found = fuzz.partial_ratio_alignment(mk, dk)
        if found is None or found.score < MATCH_THRESHOLD:
            continue
        left, top, right, bottom = quad_bounds(detected[j].quad)
        width = right - left
        box = (
            left + width * found.dest_start / len(dk),
            top,
            left + width * found.dest_end / len(dk),
            bottom,
        )
        candidate = (found.score, _closeness(i, len(md_keys), j, len(det_keys)), box)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return best[2] if best else None


def _stack(
    run: Sequence[MarkdownLine], top: float, limit: float, nominal: float, width: int, height: int
) -> list[Box]:
    """Bands for lines with no located box, in order from `top` down to `limit`: one unit per
    row, a heading taller, an empty unit between paragraphs, a row's cells side by side. With
    no room there (columns, lines out of order) the units are `nominal` high, below `top`."""
    units = 0.0
    slots: list[tuple[float, float]] = []
    for n, line in enumerate(run):
        previous = run[n - 1] if n else None
        if previous is not None and line.row == previous.row:
            slots.append(slots[-1])
            continue
        if previous is not None and line.paragraph != previous.paragraph:
            units += 1.0
        size = HEADING_UNITS if line.heading else 1.0
        slots.append((units, size))
        units += size
    unit = (limit - top) / units if limit - top >= units else nominal
    boxes = []
    for (start, size), line in zip(slots, run, strict=True):
        cell_w = width / line.cells
        y0 = min(top + start * unit, height - 1.0)
        boxes.append(
            (
                cell_w * line.cell,
                y0,
                cell_w * (line.cell + 1),
                min(max(top + (start + size) * unit, y0 + 1.0), float(height)),
            )
        )
    return boxes


def locate_lines(
    lines: Sequence[MarkdownLine],
    detected: Sequence[TextLine],
    width: int,
    height: int,
    *,
    confidence: float = 0.9,
) -> tuple[list[TextLine], GeometrySource]:
    """TextLines for markdown lines, boxed by the detected lines they match (see module doc)."""
    md_keys = [_key(line.text) for line in lines]
    det_keys = [_key(line.text) for line in detected]
    boxes: list[Box | None] = [None] * len(lines)
    for i, owned in _owners(md_keys, det_keys).items():
        bounds = [quad_bounds(detected[j].quad) for j in owned]
        boxes[i] = (
            min(b[0] for b in bounds),
            min(b[1] for b in bounds),
            max(b[2] for b in bounds),
            max(b[3] for b in bounds),
        )
    for i in range(len(lines)):
        if boxes[i] is None:
            boxes[i] = _inside(i, md_keys, det_keys, detected)
    found = [box for box in boxes if box is not None]
    nominal = statistics.median(b[3] - b[1] for b in found) if found else height / 40
    placed: list[Box] = []
    i = 0
    while i < len(lines):  # runs of unlocated lines are stacked between their neighbours
        box = boxes[i]
        if box is not None:
            placed.append(box)
            i += 1
            continue
        end = i
        while end < len(lines) and boxes[end] is None:
            end += 1
        after = boxes[end] if end < len(lines) else None
        top = placed[-1][3] if placed else 0.0
        limit = after[1] if after is not None else float(height)
        placed.extend(_stack(lines[i:end], top, limit, nominal, width, height))
        i = end
    # a VLM gives no word boxes: each line's box is split by character counts (approximate)
    result = [
        TextLine(
            text=line.text,
            confidence=confidence,
            quad=quad_from_box(*box),
            words=words_by_share(line.text, confidence, quad_from_box(*box)),
        )
        for line, box in zip(lines, placed, strict=True)
    ]
    source: GeometrySource = (
        "detected" if lines and len(found) == len(lines) else "mixed" if found else "page"
    )
    return result, source
