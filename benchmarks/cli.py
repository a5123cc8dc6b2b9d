"""`ocr-gateway bench` (also `python -m benchmarks`): compare providers on document corpora.

Exit codes: 0 done, 2 bad arguments, config or corpus, 130 interrupted (Ctrl-C; what finished is
still reported and written).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import structlog

from benchmarks.corpus import CorpusError, load_documents, load_ground_truth
from benchmarks.environment import describe_machine, git_commit, package_versions
from benchmarks.progress import Progress
from benchmarks.report import render_failures, render_table, write_outputs
from benchmarks.results import (
    ORACLE,
    ROUTED,
    SCHEMA_VERSION,
    BenchResults,
    PageRow,
    RunInfo,
    aggregate,
)
from benchmarks.runner import BenchPlan, run_bench
from gateway.config import CONFIG_ENV, ConfigError, Settings, load_settings

REPO_ROOT = Path(__file__).resolve().parents[1]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ocr-gateway bench",
        description="Run OCR providers and the routed pipeline on corpora of documents with "
        "ground truth (folders with a manifest.jsonl, as ../shared/corpus) and compare quality, "
        "speed, memory, credits and errors.",
    )
    parser.add_argument(
        "--corpus",
        action="append",
        required=True,
        type=Path,
        metavar="DIR",
        help="a folder with a manifest.jsonl, or a folder of such folders "
        "(walked); repeat for several",
    )
    parser.add_argument(
        "--providers",
        required=True,
        metavar="LIST",
        help="comma-separated: configured provider names, `routed` (the full "
        "pipeline as the server runs it) and `oracle` (per page, the best "
        "reading among the listed providers)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="at most N documents per category (manifest order); every page of "
        "each document is read",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write results.json, results.schema.json, report.md and PNG plots",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="gateway config (default: $OCR_GATEWAY_CONFIG, else config.yaml at "
        "the repository root if present, else built-in defaults)",
    )
    return parser


def _config_path(explicit: Path | None) -> Path | None:
    if explicit is not None:
        return explicit
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    default = REPO_ROOT / "config.yaml"
    return default if default.is_file() else None


def _providers(text: str, settings: Settings) -> list[str]:
    providers = list(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    unknown = [p for p in providers if p not in settings.providers and p not in (ROUTED, ORACLE)]
    if unknown:
        raise ValueError(
            f"unknown provider(s) {', '.join(unknown)}; configured: "
            f"{', '.join(sorted(settings.providers))}, plus {ROUTED} and {ORACLE}"
        )
    if not providers:
        raise ValueError("--providers lists no provider")
    if ORACLE in providers and not [p for p in providers if p not in (ROUTED, ORACLE)]:
        raise ValueError(f"{ORACLE} needs at least one configured provider to choose from")
    return providers


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """Worker-pool lifecycle logs would break the progress line: warnings only, on stderr.

    Leaves a structlog configuration made by the caller alone, and undoes its own.
    """
    if structlog.is_configured():
        yield
        return
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    try:
        yield
    finally:
        structlog.reset_defaults()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    config_path = _config_path(args.config)
    try:
        settings = load_settings(config_path)
        providers = _providers(args.providers, settings)
        documents = load_documents(args.corpus, args.limit)
        truths = tuple(load_ground_truth(doc) for doc in documents)
    except (ConfigError, CorpusError, ValueError) as exc:
        print(f"ocr-gateway bench: {exc}", file=sys.stderr)
        return 2
    plan = BenchPlan(
        settings=settings, providers=tuple(providers), documents=tuple(documents), truths=truths
    )
    rows: list[PageRow] = []
    started, interrupted = _now(), False
    try:
        with _quiet_logs():
            asyncio.run(run_bench(plan, rows, Progress(sys.stderr)))
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: reporting the pages every provider finished", file=sys.stderr)
    results = BenchResults(
        schema_version=SCHEMA_VERSION,
        run=RunInfo(
            started_at=started,
            finished_at=_now(),
            interrupted=interrupted,
            argv=list(sys.argv[1:] if argv is None else argv),
            corpora=[str(c) for c in args.corpus],
            providers=providers,
            limit=args.limit,
            config_path=str(config_path) if config_path else None,
            settings=msgspec.to_builtins(settings),
            versions=package_versions(),
            models={r.provider: r.model for r in rows if r.model and r.provider != ORACLE},
            git_commit=git_commit(REPO_ROOT),
            machine=describe_machine(),
        ),
        pages=rows,
        aggregates=aggregate(rows, providers),
    )
    print(render_table(results.aggregates))
    if any(r.status == "failed" for r in rows):
        print("\nFailed pages:\n" + render_failures(rows))
    if args.out is not None:
        written = write_outputs(results, args.out)
        print(f"\nwrote {', '.join(str(p) for p in written)}")
    return 130 if interrupted else 0
