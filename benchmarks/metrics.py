"""Text and table quality measures. Pure functions, no I/O.

- `cer` and `wer`: Levenshtein distance over characters / whitespace tokens of the normalized
  texts, divided by the length of the reference. They can exceed 1 when the reading is longer
  than the reference. An empty reference gives 0 for an empty reading and 1 otherwise.
- `bag_of_words_f1`: F1 of the multisets of lower-cased whitespace tokens. It ignores order, so
  a ground truth whose lines are not in reading order neither hides nor fakes a change.
- `cell_f1`: F1 of the multisets of non-empty table cells (whitespace-normalized, exact match).

Normalization is Unicode NFC plus collapsing every run of whitespace to one space.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

import msgspec
from rapidfuzz.distance import Levenshtein

_WHITESPACE = re.compile(r"\s+")
_TABLE_RULE = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$")


class TextScores(msgspec.Struct, frozen=True, kw_only=True):
    cer: float
    wer: float
    f1: float


def normalize_text(text: str) -> str:
    """NFC, whitespace runs collapsed to one space, ends stripped."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def _error_rate(reference: Sequence[str] | str, hypothesis: Sequence[str] | str) -> float:
    if not reference:
        return 0.0 if not hypothesis else 1.0
    return Levenshtein.distance(reference, hypothesis) / len(reference)


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate of `hypothesis` against `reference`, both normalized first."""
    return _error_rate(normalize_text(reference), normalize_text(hypothesis))


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate over whitespace tokens of the normalized texts."""
    return _error_rate(normalize_text(reference).split(), normalize_text(hypothesis).split())


def multiset_f1(reference: Iterable[str], hypothesis: Iterable[str]) -> float:
    """F1 of two multisets: matches are counted with multiplicity. Both empty gives 1."""
    ref, hyp = Counter(reference), Counter(hypothesis)
    ref_total, hyp_total = sum(ref.values()), sum(hyp.values())
    if not ref_total and not hyp_total:
        return 1.0
    matched = sum((ref & hyp).values())
    if not matched:
        return 0.0
    precision, recall = matched / hyp_total, matched / ref_total
    return 2 * precision * recall / (precision + recall)


def bag_of_words_f1(reference: str, hypothesis: str) -> float:
    """Order-insensitive F1 over lower-cased whitespace tokens."""
    return multiset_f1(
        normalize_text(reference).lower().split(), normalize_text(hypothesis).lower().split()
    )


def score_text(reference: str, hypothesis: str) -> TextScores:
    return TextScores(
        cer=cer(reference, hypothesis),
        wer=wer(reference, hypothesis),
        f1=bag_of_words_f1(reference, hypothesis),
    )


def table_cells(rows: Iterable[Iterable[str]]) -> list[str]:
    """The non-empty cells of a table, normalized, row by row."""
    return [cell for row in rows for cell in (normalize_text(c) for c in row) if cell]


def cell_f1(reference_cells: Iterable[str], hypothesis_cells: Iterable[str]) -> float:
    """Cell-level F1: each normalized non-empty cell must match exactly, in any position."""
    return multiset_f1(table_cells([reference_cells]), table_cells([hypothesis_cells]))


def parse_markdown_tables(markdown: str) -> list[list[list[str]]]:
    """Pipe tables in `markdown`: a header row, a `---` rule, then body rows; rule rows dropped."""
    tables: list[list[list[str]]] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        header = lines[i].strip()
        rule = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if "|" in header and _TABLE_RULE.match(rule):
            table = [_pipe_cells(header)]
            i += 2
            while i < len(lines) and "|" in lines[i]:
                table.append(_pipe_cells(lines[i].strip()))
                i += 1
            tables.append(table)
        else:
            i += 1
    return tables


def _pipe_cells(row: str) -> list[str]:
    row = row.removeprefix("|").removesuffix("|")
    return [cell.strip() for cell in row.split("|")]
