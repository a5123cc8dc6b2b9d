"""Manifests walked into documents, and ground truth matched to the right page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.corpus import CorpusDocument, CorpusError, load_documents, load_ground_truth

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


def _document(category: str, file: str) -> CorpusDocument:
    return next(d for d in load_documents([CORPUS / category]) if d.entry.file == file)


def test_a_folder_of_folders_is_walked_into_every_category() -> None:
    categories = {d.category for d in load_documents([CORPUS])}
    assert {"a_clean_printed", "d_tables", "g_malformed"} <= categories


def test_limit_keeps_the_first_documents_of_each_category() -> None:
    documents = load_documents([CORPUS / "a_clean_printed", CORPUS / "e_handwriting"], limit=2)
    assert [(d.category, d.entry.file) for d in documents][:2] == [
        ("a_clean_printed", "tesseract/phototest.tif"),
        ("a_clean_printed", "tesseract/phototest-rotated-180.png"),
    ]
    assert len(documents) == 4


def test_csv_ground_truth_becomes_cells_and_row_text() -> None:
    """AnimalSounds.csv: 3 rows of 3 cells, two of them spanning lines."""
    truth = load_ground_truth(_document("d_tables", "tabula/AnimalSounds.pdf"))
    assert list(truth) == [1]
    cells = truth[1].cells
    assert cells is not None
    assert len(cells) == 9
    assert cells[:3] == ("Cat", "Says", "Meow")
    assert cells[3] == "Parastratiosphecomyiastratiosph ecomyioides"
    assert truth[1].text.splitlines()[0] == "Cat Says Meow"
    assert truth[1].area_pt is None  # the notes give columns (-c), not an area


def test_tabula_ground_truth_goes_to_the_page_and_area_in_its_notes() -> None:
    truth = load_ground_truth(_document("d_tables", "tabula/us-020.pdf"))
    assert list(truth) == [2]
    assert truth[2].area_pt == (103.0, 35.0, 641.0, 560.0)


def test_icdar_tables_go_to_the_pages_named_in_their_files() -> None:
    """eu-004: page 2 holds two tables of 110 and 95 non-empty cells (counted by hand)."""
    truth = load_ground_truth(_document("d_tables", "icdar2013/eu-004.pdf"))
    assert sorted(truth) == [2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 14]
    page2 = truth[2]
    assert page2.cells is not None
    assert len(page2.cells) == 110 + 95
    assert page2.cells[0] == "per capita GNP ($000) 1995"


def test_pdftotext_ground_truth_is_split_at_form_feeds() -> None:
    truth = load_ground_truth(_document("f_pdfs", "born_digital/tracemonkey.pdf"))
    assert sorted(truth) == list(range(1, 15))
    assert "Trace-based" in truth[1].text
    assert "Trace-based Just-in-Time" not in truth[2].text


def test_documents_without_ground_truth_have_none() -> None:
    assert load_ground_truth(_document("g_malformed", "pdf/ocrmypdf_invalid.pdf")) == {}


def _write_manifest(folder: Path, entries: list[dict[str, object]]) -> None:
    folder.mkdir(parents=True)
    (folder / "manifest.jsonl").write_text(
        "".join(json.dumps(e) + "\n" for e in entries), encoding="utf-8"
    )


def test_dollar_tags_are_stripped_when_the_notes_say_so(tmp_path: Path) -> None:
    _write_manifest(
        tmp_path / "es",
        [
            {
                "file": "page.jpg",
                "ground_truth": "page.gt.txt",
                "notes": "Spanish notarial page; strip `$...:` tags before scoring.",
            },
            {"file": "other.jpg", "ground_truth": "page.gt.txt", "notes": "prices in $"},
        ],
    )
    (tmp_path / "es" / "page.gt.txt").write_text("Sepan $abbr:qto los $pc:que\n")
    tagged, untagged = load_documents([tmp_path])
    assert load_ground_truth(tagged)[1].text == "Sepan qto los que\n"
    assert load_ground_truth(untagged)[1].text == "Sepan $abbr:qto los $pc:que\n"


def test_a_broken_manifest_line_is_named(tmp_path: Path) -> None:
    (tmp_path / "manifest.jsonl").write_text('{"file": "a.png"}\n{"file": \n')
    with pytest.raises(CorpusError, match=r"manifest.jsonl:2"):
        load_documents([tmp_path])


def test_a_folder_without_manifest_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"no manifest\.jsonl"):
        load_documents([tmp_path])
