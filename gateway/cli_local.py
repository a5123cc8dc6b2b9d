"""`ocr-gateway ocr` and `ocr-gateway quote`: read or price a file in this process, with the
server's own pipeline and routing, no server needed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import msgspec

from gateway.cli_common import CLIError, settings_of


def cmd_ocr(args: argparse.Namespace) -> int:
    """Read a file with the server's pipeline, in this process, and write it in any result
    format (gateway.outputs); a binary format (pdf) goes to --out only."""
    import functools

    from gateway.errors import DocumentError
    from gateway.logs import configure_logging
    from gateway.outputs.formats import OutputFormat, write_text_format
    from gateway.outputs.pdf import Source, write_searchable_pdf
    from gateway.page_errors import PageError
    from gateway.results import failed_page
    from gateway.services import VERSION
    from gateway.work.documents import DocumentKind, detect_kind, inspect_document, render_page
    from gateway.work.inspection import parse_page_ranges
    from gateway.work.pipeline import PageEngine, PageTask

    fmt = OutputFormat(args.format)
    if fmt == OutputFormat.PDF and not args.out:
        raise CLIError("--format pdf writes a binary file: name it with --out FILE")
    settings = settings_of(args)
    configure_logging(settings.logging)  # log lines to stderr: stdout carries the result
    if args.provider:
        if args.provider not in settings.providers:
            raise CLIError(f"unknown provider {args.provider!r}")
        settings = msgspec.structs.replace(
            settings, pipeline=msgspec.structs.replace(settings.pipeline, provider=args.provider)
        )
    path = Path(args.file)
    try:
        head = path.open("rb").read(2048)
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror}") from exc
    kind = detect_kind(head)
    if kind is None:
        raise CLIError(f"{path}: not a supported document type")
    try:
        info = inspect_document(path, kind, settings.limits.max_pixels_per_page)
        pages = parse_page_ranges(args.page_ranges, info.page_count)
    except DocumentError as exc:
        raise CLIError(f"{path}: {exc.message}") from exc
    engine = PageEngine(settings)
    results = []
    for number in pages:
        try:
            results.append(
                engine.read_page(PageTask(path=str(path), kind=kind, page_number=number))
            )
        except PageError as exc:
            results.append(failed_page(number, exc.detail()))
    if fmt == OutputFormat.PDF:
        render = functools.partial(
            render_page,
            path,
            kind,
            dpi=settings.rendering.dpi,
            max_pixels=settings.limits.max_pixels_per_page,
        )
        source = Source(
            pdf_path=str(path) if kind == DocumentKind.PDF else None,
            render=render,
            lossy=kind == DocumentKind.JPEG,
        )
        write_searchable_pdf(results, args.out, source, producer=f"ocr-gateway {VERSION}")
    else:
        if fmt == OutputFormat.JSON:
            text = msgspec.json.format(msgspec.json.encode(results), indent=2).decode() + "\n"
        else:
            text = write_text_format(fmt, results, path.name, ("ocr-gateway", VERSION))
        if args.out:
            Path(args.out).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
    failed = [r for r in results if r.status == "failed"]
    for r in failed:
        assert r.error is not None
        print(f"page {r.page_number}: {r.error.code}: {r.error.message}", file=sys.stderr)
    return 1 if failed and len(failed) == len(results) else 0


def cmd_quote(args: argparse.Namespace) -> int:
    """Each page's tier, credits and reason, as the server would bill them (local providers)."""
    from gateway.errors import DocumentError
    from gateway.work.assess import plan_context
    from gateway.work.documents import detect_kind
    from gateway.work.inspection import prepare_in_worker
    from router.plan import plan_document
    from router.policy import Mode

    settings = settings_of(args)
    plan = settings.plans.get(args.plan) if args.plan else None
    if args.plan and plan is None:
        raise CLIError(f"unknown plan {args.plan!r}; configured: {', '.join(settings.plans)}")
    path = Path(args.file)
    try:
        kind = detect_kind(path.open("rb").read(2048))
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror}") from exc
    if kind is None:
        raise CLIError(f"{path}: not a supported document type")
    max_pages = min(settings.limits.max_pages, plan.max_pages_per_document if plan else 10**9)
    try:
        prepared = prepare_in_worker(
            None, str(path), kind, args.page_ranges, max_pages, settings, phase=lambda _: None
        )
    except DocumentError as exc:
        raise CLIError(f"{path}: {exc.message}") from exc
    context = plan_context(
        settings,
        mode=Mode(args.mode),
        max_credits=args.max_credits,
        plan=args.plan,
        allowed_tiers=frozenset(plan.allowed_tiers) if plan else None,
    )
    planned = plan_document(prepared.evidence, settings.routing, context)
    if not planned.fits(args.max_credits):
        raise CLIError(f"max_credits {args.max_credits} is below the {planned.credits} needed")
    for number, route in zip(prepared.pages, planned.routes, strict=True):
        first = route.providers[0] if route.providers else "-"
        print(f"page {number:4d}  {route.tier.value:7s} {route.credits} credits  {first:10s}"
              f"  {route.reason}")  # fmt: skip
    print(f"total: {planned.credits} credits for {len(planned.routes)} pages")
    return 0


def add_local_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`ocr` and `quote`."""
    ocr = sub.add_parser("ocr", help="read one file locally with the same pipeline, no server")
    ocr.add_argument("--config", default=argparse.SUPPRESS)
    ocr.add_argument("file")
    ocr.add_argument(
        "--format",
        choices=["json", "markdown", "text", "hocr", "alto", "pdf"],
        default="markdown",
        help="what to write (pdf: a searchable PDF, needs --out)",
    )
    ocr.add_argument("--out", help="write the result to this file instead of stdout")
    ocr.add_argument("--provider", help="read every page with this configured provider")
    ocr.add_argument("--page-ranges", help='JSON, e.g. [{"start":1,"end":3}]')
    ocr.set_defaults(func=cmd_ocr)

    quote = sub.add_parser("quote", help="price a file as the server would bill it, no server")
    quote.add_argument("--config", default=argparse.SUPPRESS)
    quote.add_argument("file")
    quote.add_argument("--page-ranges", help='JSON, e.g. [{"start":1,"end":3}]')
    quote.add_argument("--mode", choices=["auto", "fast", "accurate"], default="auto")
    quote.add_argument("--max-credits", type=int)
    quote.add_argument("--plan", help="apply this plan's allowed tiers and page limit")
    quote.set_defaults(func=cmd_quote)
