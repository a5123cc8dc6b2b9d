"""The benchmark's quality measures against values computed by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.corpus import load_documents, load_ground_truth
from benchmarks.metrics import (
    bag_of_words_f1,
    cell_f1,
    cer,
    normalize_text,
    parse_markdown_tables,
    score_text,
    wer,
)

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  a\n\tb   c \n", "a b c"),
        ("line one\nline two", "line one line two"),
        ("e\u0301t\u00e9", "\u00e9t\u00e9"),  # NFC: e + combining acute is é
        ("", ""),
    ],
)
def test_normalize_text_collapses_whitespace_and_composes(text: str, expected: str) -> None:
    assert normalize_text(text) == expected


@pytest.mark.parametrize(
    ("reference", "hypothesis", "expected"),
    [
        ("abc", "abc", 0.0),
        ("abc", "abd", 1 / 3),  # one substitution over 3 characters
        ("abcd", "abd", 1 / 4),  # one deletion
        ("ab", "abcd", 2 / 2),  # two insertions: CER can reach and pass 1
        ("abc", "", 1.0),
        ("", "", 0.0),
        ("", "x", 1.0),
        ("a  b\nc", "a b c", 0.0),  # whitespace is normalized first
    ],
)
def test_cer_is_character_edits_over_reference_length(
    reference: str, hypothesis: str, expected: float
) -> None:
    assert cer(reference, hypothesis) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("reference", "hypothesis", "expected"),
    [
        ("the cat sat", "the cat sat", 0.0),
        ("the cat sat", "the cat sat down", 1 / 3),  # one inserted word over 3
        ("the cat sat", "the dog sat", 1 / 3),
        ("the cat", "cat the", 1.0),  # order matters: two substitutions
        ("the cat", "", 1.0),
    ],
)
def test_wer_is_word_edits_over_reference_words(
    reference: str, hypothesis: str, expected: float
) -> None:
    assert wer(reference, hypothesis) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("reference", "hypothesis", "expected"),
    [
        ("the cat", "cat the", 1.0),  # order does not matter
        ("The Cat", "the cat", 1.0),  # case does not matter
        # ref {the: 2, cat: 1}, hyp {the: 1, dog: 1}: 1 match, P = 1/2, R = 1/3, F1 = 0.4
        ("The cat the", "the dog", 0.4),
        ("a b c d", "a b", 2 * 1.0 * 0.5 / 1.5),  # P = 1, R = 1/2
        ("a", "", 0.0),
        ("", "", 1.0),
    ],
)
def test_bag_of_words_f1_counts_lowercased_tokens(
    reference: str, hypothesis: str, expected: float
) -> None:
    assert bag_of_words_f1(reference, hypothesis) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("reference", "hypothesis", "expected"),
    [
        (["Cat", "Says", "Meow"], ["Cat", "Says", "Meow"], 1.0),
        (["Cat", "Says", "Meow"], ["Cat", "Says", "Woof"], 2 / 3),  # P = R = 2/3
        (["Cat", "", "Meow"], ["Meow", "Cat"], 1.0),  # empty cells ignored, position ignored
        (["Ring-\nding"], ["Ring- ding"], 1.0),  # whitespace inside a cell normalized
        (["a", "a"], ["a"], 2 * 1.0 * 0.5 / 1.5),  # multiset: P = 1, R = 1/2
    ],
)
def test_cell_f1_matches_cells_exactly_in_any_position(
    reference: list[str], hypothesis: list[str], expected: float
) -> None:
    assert cell_f1(reference, hypothesis) == pytest.approx(expected)


def test_markdown_pipe_tables_are_parsed_into_rows_of_cells() -> None:
    markdown = "Title\n\n| a | b |\n|---|:---:|\n| 1 | 2 |\n|  | 4 |\n\nafter | the table"
    assert parse_markdown_tables(markdown) == [[["a", "b"], ["1", "2"], ["", "4"]]]


def test_text_with_pipes_but_no_rule_is_not_a_table() -> None:
    assert parse_markdown_tables("a | b\nc | d") == []


def test_uw3_line_scores_match_hand_computed_values() -> None:
    """A real ground-truth line, read with one wrong letter."""
    documents = load_documents([CORPUS / "a_clean_printed"])
    line = next(d for d in documents if d.entry.file == "uw3_lines/010003.bin.png")
    truth = load_ground_truth(line)[1]
    assert normalize_text(truth.text) == "is further assumed that"  # 23 characters, 4 words
    scores = score_text(truth.text, "is further assumad that")
    assert scores.cer == pytest.approx(1 / 23)
    assert scores.wer == pytest.approx(1 / 4)
    assert scores.f1 == pytest.approx(0.75)  # 3 of 4 tokens match both ways


def test_uw3_line_read_in_two_lines_keeps_its_order_sensitive_scores() -> None:
    """Line breaks are whitespace: a reading split over two lines loses nothing."""
    documents = load_documents([CORPUS / "a_clean_printed"])
    line = next(d for d in documents if d.entry.file == "uw3_lines/010004.bin.png")
    truth = load_ground_truth(line)[1]
    hypothesis = "(actually potential differences from the datum)\nare scaled by the mean value of"
    assert score_text(truth.text, hypothesis).cer == 0.0


def test_engine_profile_variants_change_one_field_and_refuse_unknown_ones() -> None:
    from benchmarks.engine_profile import columns, crop_size, with_fields
    from providers.rapidocr import RapidOCRConfig

    base = RapidOCRConfig()
    changed = with_fields(base, "det_limit_side_len=960,restore_spaces=false")
    assert changed.det_limit_side_len == 960
    assert changed.restore_spaces is False
    assert changed.rec_batch_size == base.rec_batch_size
    with pytest.raises(SystemExit, match="no field 'det_size'"):
        with_fields(base, "det_size=960")
    import numpy as np

    quad = np.array([[10, 20], [310, 20], [310, 44], [10, 44]], dtype=np.float32)
    assert crop_size(quad) == (300.0, 24.0)
    assert columns(300.0, 24.0) == 600  # 48 px high: twice as wide
