"""What a run leaves behind: the terminal table, results.json (+ its JSON Schema), report.md."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from benchmarks.plots import QUALITY_PLOT, TIER_PLOT, plot_quality_vs_speed, plot_tiers
from benchmarks.results import ALL, Aggregate, BenchResults, PageRow

Column = tuple[str, Callable[[Aggregate], str]]


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


COLUMNS: list[Column] = [
    ("category", lambda a: a.category),
    ("provider", lambda a: a.provider),
    ("pages", lambda a: str(a.pages)),
    ("failed", lambda a: str(a.failed)),
    ("scored", lambda a: str(a.scored_pages)),
    ("CER", lambda a: _num(a.cer, ".3f")),
    ("WER", lambda a: _num(a.wer, ".3f")),
    ("F1", lambda a: _num(a.f1, ".3f")),
    ("table F1", lambda a: _num(a.table_f1, ".3f")),
    ("s/page med", lambda a: _num(a.seconds_median, ".2f")),
    ("s/page p90", lambda a: _num(a.seconds_p90, ".2f")),
    ("pages/s", lambda a: _num(a.pages_per_second, ".2f")),
    ("peak MiB", lambda a: _num(a.peak_rss_mb, ".0f")),
    ("credits", lambda a: _num(a.credits, "g")),
    ("= oracle", lambda a: _num(a.oracle_agreement, ".0%")),
    ("F1 given up", lambda a: _num(a.f1_given_up, ".3f")),
]


def _ordered(aggregates: Sequence[Aggregate]) -> list[Aggregate]:
    """Category by category (`all` last), the providers side by side within each."""
    categories = [c for c in dict.fromkeys(a.category for a in aggregates) if c != ALL] + [ALL]
    return [a for c in categories for a in aggregates if a.category == c]


def _cells(aggregates: Sequence[Aggregate]) -> list[list[str]]:
    return [[render(a) for _, render in COLUMNS] for a in _ordered(aggregates)]


def render_table(aggregates: Sequence[Aggregate]) -> str:
    """A plain-text table, one row per provider per category."""
    header = [name for name, _ in COLUMNS]
    rows = _cells(aggregates)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    out, previous = [line(header), "  ".join("-" * w for w in widths)], None
    for row in rows:
        if previous is not None and row[0] != previous:
            out.append("")
        out.append(line(row))
        previous = row[0]
    return "\n".join(out)


def render_failures(pages: Sequence[PageRow]) -> str:
    """Failed pages grouped by provider and error code, naming the files."""
    grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for row in pages:
        if row.status == "failed":
            where = f"{row.category}/{row.file}" + (
                f" p{row.page_number}" if row.page_number else ""
            )
            grouped[(row.provider, row.error_code or "unknown")].append(where)
    if not grouped:
        return "No page failed."
    return "\n".join(
        f"- {provider} `{code}` ({len(files)}): {', '.join(files)}"
        for (provider, code), files in sorted(grouped.items())
    )


def _markdown_table(aggregates: Sequence[Aggregate]) -> str:
    header = [name for name, _ in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in _cells(aggregates)]
    return "\n".join(lines)


def render_markdown(results: BenchResults, plots: Sequence[str]) -> str:
    run = results.run
    versions = ", ".join(f"{k} {v}" for k, v in sorted(run.versions.items()))
    models = ", ".join(f"{k}: {v}" for k, v in run.models.items()) or "none"
    rules = sorted({(r.category, r.page_rule) for r in results.pages if r.page_rule})
    parts = [
        "# OCR benchmark",
        "",
        f"- date: {run.started_at} to {run.finished_at} (UTC)"
        + (" - **interrupted: only finished pages are reported**" if run.interrupted else ""),
        f"- providers: {', '.join(run.providers)}",
        f"- corpora: {', '.join(run.corpora)}; limit: {run.limit or 'none'} documents/category",
        f"- config: {run.config_path or 'built-in defaults'}; git commit: {run.git_commit}",
        f"- machine: {run.machine.platform}, {run.machine.cpu_count} CPUs, "
        f"{run.machine.memory_gib} GiB, Python {run.machine.python}",
        f"- models: {models}",
        f"- versions: {versions}",
        "",
        "## Results",
        "",
        _markdown_table(results.aggregates),
        "",
        "## Failed pages",
        "",
        render_failures(results.pages),
        "",
        "## Plots",
        "",
        *[f"![{name}]({name})\n" for name in plots],
        "## How to read this",
        "",
        "- CER / WER: edit distance over characters / words of the whitespace-normalized texts, "
        "divided by the reference length (can exceed 1). F1: bag-of-words F1 over lower-cased "
        "tokens, blind to line order (ground-truth line order is not always reading order).",
        "- table F1: cell-level F1 of the tables a reading holds (markdown pipe or HTML tables) "
        "on every page whose ground truth is a table, 0 where it holds none. `routed` holds the "
        "tables its pipeline found; for each provider the product's table stage (tables found on "
        "the image, cell text from the engine's words) is run on its reading apart, untimed, so "
        "its text scores, seconds and memory stay the engine's own. For CER/WER/F1, tables are "
        "scored as text, each row's cells joined by spaces. Table ground truth covers the tables "
        "only: unless the notes give an area (tabula), the whole page is compared, so text "
        "around the tables counts against CER and precision.",
        "- A failed page with ground truth is scored as an empty reading. Pages without ground "
        "truth count for speed and errors only. Means are page means.",
        "- s/page: rendering + recognition + layout of one page, one page at a time (a "
        "provider's table stage not included); for `routed`, the wall time of "
        "`PageEngine.read_page`, its table stage included. pages/s = pages / total seconds.",
        "- peak MiB: high-water resident memory of the provider's worker process or its "
        "largest child (the tesseract binary); it only grows during a run.",
        "- oracle: per page with ground truth, the best reading among the listed providers; "
        "`= oracle` is how often `routed` chose one of its providers, `F1 given up` the mean F1 "
        "below it. credits: `pipeline_metadata.credits` when reported, else the configured "
        "`credits_per_page`.",
        "",
        "Ground-truth pages:",
        "",
        *[f"- {category}: {rule}" for category, rule in rules],
        "",
    ]
    return "\n".join(parts)


def write_outputs(results: BenchResults, out: Path) -> list[Path]:
    """results.json, results.schema.json, report.md and the plots; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, plot in ((QUALITY_PLOT, plot_quality_vs_speed), (TIER_PLOT, plot_tiers)):
        if plot(results.aggregates, out / name):
            written.append(out / name)
    (out / "results.json").write_bytes(
        msgspec.json.format(msgspec.json.encode(results), indent=2) + b"\n"
    )
    (out / "results.schema.json").write_bytes(
        msgspec.json.format(msgspec.json.encode(msgspec.json.schema(BenchResults)), indent=2)
    )
    (out / "report.md").write_text(
        render_markdown(results, [p.name for p in written]), encoding="utf-8"
    )
    return [out / "results.json", out / "results.schema.json", out / "report.md", *written]
