"""PNG plots with matplotlib's Agg canvas (no pyplot, no display, no global state)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from benchmarks.results import ALL, ORACLE, Aggregate

QUALITY_PLOT = "quality_vs_speed.png"
TIER_PLOT = "tiers.png"
MARKERS = "osD^vP*Xhp<>"


def _log_span(values: list[float]) -> tuple[float, float]:
    """Limits around `values` spanning at least a factor of 10, so a log axis has ticks."""
    low, high = min(values) / 1.5, max(values) * 1.5
    if high / low < 10:
        middle = (low * high) ** 0.5
        low, high = middle / 10**0.5, middle * 10**0.5
    return low, high


def plot_quality_vs_speed(aggregates: Sequence[Aggregate], path: Path) -> bool:
    """F1 against median seconds per page: one point per provider per category.

    Returns False, writing nothing, when no aggregate has both a quality and a time.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    points = [
        a
        for a in aggregates
        if a.category != ALL and a.f1 is not None and a.seconds_median is not None
    ]
    if not points:
        return False
    providers = list(dict.fromkeys(a.provider for a in points))
    categories = list(dict.fromkeys(a.category for a in points))
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.subplots()
    for i, provider in enumerate(providers):
        hollow = provider == ORACLE  # drawn as a ring: it sits on the provider it picked
        for a in points:
            if a.provider == provider:
                marker = MARKERS[categories.index(a.category) % len(MARKERS)]
                ax.scatter(
                    a.seconds_median or 0.0,
                    a.f1 or 0.0,
                    marker=marker,
                    s=160 if hollow else 60,
                    edgecolors=f"C{i}",
                    facecolors="none" if hollow else f"C{i}",
                )
    for i, provider in enumerate(providers):  # legend entries: colour = provider
        ax.scatter([], [], color=f"C{i}", marker="o", label=provider)
    for j, category in enumerate(categories):  # marker = category
        ax.scatter([], [], color="grey", marker=MARKERS[j % len(MARKERS)], label=category)
    ax.set_xscale("log")
    ax.set_xlim(*_log_span([a.seconds_median for a in points if a.seconds_median]))
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("seconds per page (median, log scale)")
    ax.set_ylabel("bag-of-words F1 (mean)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    ax.set_title("Quality against speed, per provider and category")
    fig.savefig(path, dpi=120)
    return True


def plot_tiers(aggregates: Sequence[Aggregate], path: Path) -> bool:
    """Pages per tier, stacked per category, for each provider that reports tiers."""
    from matplotlib.figure import Figure

    tiered = [a for a in aggregates if a.tiers and a.category != ALL]
    providers = list(dict.fromkeys(a.provider for a in tiered))
    if not providers:
        return False
    fig = Figure(figsize=(8, 3.5 * len(providers)), layout="constrained")
    axes = fig.subplots(len(providers), 1, squeeze=False)[:, 0]
    for ax, provider in zip(axes, providers, strict=True):
        mine = [a for a in tiered if a.provider == provider]
        tiers = sorted({t for a in mine for t in a.tiers})
        bottoms = [0] * len(mine)
        for k, tier in enumerate(tiers):
            counts = [a.tiers.get(tier, 0) for a in mine]
            ax.bar([a.category for a in mine], counts, bottom=bottoms, label=tier, color=f"C{k}")
            bottoms = [b + c for b, c in zip(bottoms, counts, strict=True)]
        ax.set_ylabel("pages")
        ax.set_title(f"Tier distribution: {provider}")
        ax.legend(fontsize="small")
        ax.tick_params(axis="x", labelrotation=20)
    fig.savefig(path, dpi=120)
    return True
