"""The benchmark run end to end: real Tesseract on real corpus pages, broken inputs beside them.

One run (module fixture) on a corpus made of two categories: three UW-III text lines from
`../shared/corpus` (one listed without ground truth) and a few broken inputs written here.
`routed` is configured to route to Tesseract, so it must agree with the oracle.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from benchmarks.cli import main
from benchmarks.corpus import load_documents, load_ground_truth
from benchmarks.results import BenchResults, PageRow, aggregate
from benchmarks.runner import Failure
from benchmarks.runner import _row as _runner_row

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
LINES = CORPUS / "a_clean_printed" / "uw3_lines"
PROVIDERS = ["tesseract", "routed", "oracle"]

CONFIG = """\
pipeline:
  provider: tesseract
providers:
  tesseract:
    kind: tesseract
"""


def _manifest(folder: Path, entries: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True)
    (folder / "manifest.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))


class Run(msgspec.Struct, frozen=True, kw_only=True):
    exit_code: int
    stdout: str
    out: Path
    results: BenchResults

    def rows(self, provider: str, category: str | None = None) -> list[PageRow]:
        return [
            r
            for r in self.results.pages
            if r.provider == provider and category in (None, r.category)
        ]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("bench")
    corpus = root / "corpus"
    _manifest(
        corpus / "lines",
        [  # absolute paths: nothing is copied out of the corpus
            {"file": str(LINES / "010003.bin.png"), "ground_truth": str(LINES / "010003.gt.txt")},
            {"file": str(LINES / "010004.bin.png"), "ground_truth": str(LINES / "010004.gt.txt")},
            {"file": str(LINES / "010005.bin.png"), "ground_truth": None},
        ],
    )
    _manifest(
        corpus / "broken",
        [
            {"file": "truncated.pdf", "ground_truth": None},
            {"file": "notes.txt", "ground_truth": None},
            {"file": "missing.png", "ground_truth": None},
        ],
    )
    (corpus / "broken" / "truncated.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    (corpus / "broken" / "notes.txt").write_bytes(b"not a document\n")
    (root / "config.yaml").write_text(CONFIG)
    out = root / "out"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(
            [
                "--corpus",
                str(corpus),
                "--providers",
                ",".join(PROVIDERS),
                "--config",
                str(root / "config.yaml"),
                "--out",
                str(out),
            ]
        )
    results = msgspec.json.decode((out / "results.json").read_bytes(), type=BenchResults)
    return Run(exit_code=code, stdout=stdout.getvalue(), out=out, results=results)


def test_run_completes_with_exit_code_zero(run: Run) -> None:
    assert run.exit_code == 0
    assert not run.results.run.interrupted


def test_results_json_decodes_into_the_schema_structs(run: Run) -> None:
    """msgspec decodes it strictly (unknown fields rejected); the fixture would fail otherwise."""
    assert run.results.schema_version == 1
    assert run.results.run.providers == PROVIDERS


def test_results_json_has_every_key_its_json_schema_requires(run: Run) -> None:
    schema = json.loads((run.out / "results.schema.json").read_text())
    data = json.loads((run.out / "results.json").read_text())
    defs = schema["$defs"]

    def check(value: dict[str, Any], name: str) -> None:
        missing = set(defs[name].get("required", [])) - set(value)
        assert not missing, f"{name} lacks {missing}"

    check(data, "BenchResults")
    check(data["run"], "RunInfo")
    check(data["run"]["machine"], "MachineInfo")
    for row in data["pages"]:
        check(row, "PageRow")
    for agg in data["aggregates"]:
        check(agg, "Aggregate")


def test_every_provider_reads_the_same_pages(run: Run) -> None:
    pages = {
        p: {(r.category, r.file, r.page_number) for r in run.rows(p)}
        for p in ("tesseract", "routed")
    }
    assert pages["tesseract"] == pages["routed"]
    assert len(pages["tesseract"]) == 6


def test_broken_inputs_fail_with_their_error_codes(run: Run) -> None:
    for provider in ("tesseract", "routed"):
        codes = {Path(r.file).name: r.error_code for r in run.rows(provider, "broken")}
        assert codes == {
            "truncated.pdf": "invalid_document",
            "notes.txt": "unsupported_media_type",
            "missing.png": "file_not_found",
        }


def test_clean_printed_lines_are_read_and_scored(run: Run) -> None:
    scored = [r for r in run.rows("tesseract", "lines") if r.ground_truth is not None]
    assert len(scored) == 2
    for row in scored:
        assert row.status == "ok"
        assert row.f1 is not None
        assert row.f1 >= 0.75
        assert row.cer is not None
        assert row.cer <= 0.1


def test_pages_without_ground_truth_are_timed_not_scored(run: Run) -> None:
    row = next(r for r in run.rows("tesseract") if r.file.endswith("010005.bin.png"))
    assert row.status == "ok"
    assert row.seconds is not None
    assert row.seconds > 0
    assert row.cer is None
    assert row.f1 is None
    assert not [r for r in run.rows("oracle") if r.file.endswith("010005.bin.png")]


def test_routed_to_the_only_provider_agrees_with_the_oracle(run: Run) -> None:
    routed = [r for r in run.rows("routed") if r.f1 is not None]
    assert routed
    assert all(r.provider_used == "tesseract" for r in routed)
    assert all(r.matches_oracle for r in routed)
    assert all(r.f1_given_up == pytest.approx(0.0) for r in routed)


def test_routed_pages_charge_their_tier(run: Run) -> None:
    ok = [r for r in run.rows("routed") if r.status == "ok"]
    prices = {"simple": 1.0, "medium": 3.0, "complex": 5.0}
    assert len(ok) == 3
    assert all(r.tier is not None and r.credits == prices[r.tier] for r in ok)
    overall = next(
        a for a in run.results.aggregates if a.provider == "routed" and a.category == "all"
    )
    assert overall.credits == sum(r.credits for r in ok if r.credits is not None)
    assert sum(overall.tiers.values()) == 3


def test_aggregates_count_failures_by_code(run: Run) -> None:
    broken = next(
        a for a in run.results.aggregates if a.provider == "tesseract" and a.category == "broken"
    )
    assert (broken.pages, broken.failed) == (3, 3)
    assert broken.error_codes == {
        "invalid_document": 1,
        "unsupported_media_type": 1,
        "file_not_found": 1,
    }


def test_peak_memory_is_measured_per_provider(run: Run) -> None:
    for row in run.rows("tesseract", "lines"):
        assert row.peak_rss_mb is not None
        assert row.peak_rss_mb > 10


def test_table_report_and_plots_are_written(run: Run) -> None:
    assert "F1 given up" in run.stdout
    assert "routed" in run.stdout
    report = (run.out / "report.md").read_text()
    assert "| lines | tesseract |" in report
    for name in ("quality_vs_speed.png", "tiers.png"):
        assert (run.out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_provider_is_a_usage_error() -> None:
    assert main(["--corpus", str(CORPUS / "a_clean_printed"), "--providers", "nope"]) == 2


def _row(seconds: float) -> PageRow:
    return PageRow(
        category="c", file="f.png", page_number=1, provider="p", status="ok", seconds=seconds
    )


def test_speed_aggregates_match_hand_computed_values() -> None:
    """Seconds 1, 2, 3, 4: median 2.5; p90 3.7 (linear: 3 + 0.7 * 1); 4 pages in 10 s."""
    rows = [_row(s) for s in (1.0, 2.0, 3.0, 4.0)]
    [per_category, overall] = aggregate(rows, ["p"])
    assert per_category.category == "c"
    assert overall.category == "all"
    assert overall.seconds_median == pytest.approx(2.5)
    assert overall.seconds_p90 == pytest.approx(3.7)
    assert overall.pages_per_second == pytest.approx(0.4)


TABLES = CORPUS / "d_tables"


@pytest.fixture(scope="module")
def tables_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Tesseract and the pipeline routed to it on one real table page (a tabula page)."""
    root = tmp_path_factory.mktemp("bench-tables")
    entry = next(
        e
        for e in map(json.loads, (TABLES / "manifest.jsonl").read_text().splitlines())
        if e["file"] == "tabula/argentina_diputados_voting_record.pdf"
    )
    for key in ("file", "ground_truth", "expected_csv"):  # absolute: nothing is copied
        entry[key] = str(TABLES / entry[key])
    _manifest(root / "corpus" / "d_tables", [entry])
    (root / "config.yaml").write_text(CONFIG)
    out = root / "out"
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(
            [
                "--corpus",
                str(root / "corpus"),
                "--providers",
                "tesseract,routed",
                "--config",
                str(root / "config.yaml"),
                "--out",
                str(out),
            ]
        )
    results = msgspec.json.decode((out / "results.json").read_bytes(), type=BenchResults)
    return Run(exit_code=code, stdout="", out=out, results=results)


def test_a_plain_provider_gets_the_table_f1_of_the_table_stage_on_its_reading(
    tables_run: Run,
) -> None:
    """The product's table stage runs on Tesseract's own reading: same engine, same tables."""
    assert tables_run.exit_code == 0
    [plain] = tables_run.rows("tesseract")
    [routed] = tables_run.rows("routed")
    assert routed.provider_used == "tesseract"
    assert plain.table_f1 is not None
    assert plain.table_f1 > 0.3
    assert plain.table_f1 == pytest.approx(routed.table_f1)
    [aggregate_row] = [
        a for a in tables_run.results.aggregates if (a.provider, a.category) == ("tesseract", "all")
    ]
    assert aggregate_row.table_pages == 1


def test_the_table_column_is_filled_for_every_provider_in_the_report(tables_run: Run) -> None:
    report = (tables_run.out / "report.md").read_text()
    for provider in ("tesseract", "routed"):
        [line] = [ln for ln in report.splitlines() if ln.startswith(f"| d_tables | {provider} |")]
        table_f1 = line.split(" | ")[8]
        assert table_f1 != "-"
        assert float(table_f1) > 0.3


def test_a_table_the_reading_does_not_hold_scores_zero() -> None:
    """A failed page with table ground truth is an empty reading: no table, table F1 0."""
    document = next(
        d for d in load_documents([TABLES]) if d.entry.file == "tabula/AnimalSounds.pdf"
    )
    truth = load_ground_truth(document)[1]
    row = _runner_row(document, 1, "tesseract", Failure(code="ocr_timeout", message="x"), truth)
    assert row.table_f1 == 0.0
    assert row.f1 == 0.0
