"""The one chain executor: read a rendered page with the providers of its route, in order.

`read_chain` walks `route.providers`: the first reading good enough ends the walk (a failed or
unsure one escalates to the next provider when the route escalates); in accurate mode every
provider reads and the best reading wins. A reading so unsure that the page may be upside down
is retried once on the page turned by orientation detection; a page whose lines run vertically
is turned first, by orientation detection, or when that is unsure by whichever quarter turn the
first provider reads better. Every call is recorded as an
`Attempt` here and nowhere else.

Where a provider runs is not its concern: `Readers` reads with a provider by name and turns a
page upright, in this process (a worker process: `pipeline.LocalReaders`) or across processes
and the network (the gateway's event loop: `readers.PoolReaders`). The page is rendered once,
before the walk, whichever providers read it.
"""

from __future__ import annotations

import time
from typing import Protocol

import msgspec

from gateway import metrics
from gateway.page_errors import OcrFailedError
from gateway.results import Attempt
from providers.errors import ProviderError
from providers.orientation import rotate_upright
from providers.types import PageImage, RecognizedPage, turned_180
from router.policy import PageRoute

SUSPICIOUS_CONFIDENCE = 0.6  # a reading this unsure may be of a page turned upside down


class Readers(Protocol):
    async def recognize(self, name: str, page: PageImage) -> RecognizedPage:
        """Read `page` with the provider `name`; raises ProviderError."""
        ...

    async def upright(self, page: PageImage) -> tuple[PageImage, int]:
        """The page turned upright and the degrees it was turned (0: left as it was)."""
        ...


class ChainSettings(msgspec.Struct, frozen=True, kw_only=True):
    min_confidence: float  # routing.escalation.min_confidence
    orientation: bool  # pipeline.orientation: an unsure reading may be retried upright


class Reading(msgspec.Struct, frozen=True, kw_only=True):
    provider: str
    page: RecognizedPage
    confidence: float
    rotation: int = 0


class ChainOutcome(msgspec.Struct, frozen=True, kw_only=True):
    reading: Reading  # the reading kept
    attempts: list[Attempt]  # every call, in order
    escalation: str | None  # why later providers read the page too


def reading_confidence(page: RecognizedPage) -> float:
    """Character-weighted mean confidence of a reading."""
    chars = sum(len(line.text) for line in page.lines)
    if not chars:
        return 0.0
    return sum(line.confidence * len(line.text) for line in page.lines) / chars


async def read_chain(
    page: PageImage, route: PageRoute, settings: ChainSettings, readers: Readers
) -> ChainOutcome:
    """Read `page` along `route`; raises OcrFailedError when no provider could."""
    attempts: list[Attempt] = []
    rotation = 0
    chain = route.providers
    if route.language is not None:  # the document's language hint (router.language)
        page = msgspec.structs.replace(page, language=route.language)
    first: Reading | None = None  # the first provider's reading, when taken to choose a turn
    if route.upright_first:
        page, rotation = await readers.upright(page)
        if rotation == 0 and chain:  # detection unsure, but the lines do run vertically
            page, rotation, first = await _quarter_turn(readers, chain[0], page, attempts)
    readings: list[Reading] = []
    escalations: list[str] = []
    for index, name in enumerate(chain):
        if index == 0 and first is not None:
            reading: Reading | None = first
        else:
            reading = await _attempt(readers, name, page, rotation, attempts)
        if (
            reading is not None
            and reading.confidence < SUSPICIOUS_CONFIDENCE
            and rotation == 0
            and settings.orientation
        ):
            turned, turned_by = await readers.upright(page)
            if turned_by:
                page, rotation = turned, turned_by
                again = await _attempt(readers, name, page, rotation, attempts)
                if again is not None and again.confidence > reading.confidence:
                    reading = again
        if reading is not None:
            readings.append(reading)
        if route.best_of_chain:
            continue
        good = reading is not None and (
            not route.escalate or reading.confidence >= settings.min_confidence
        )
        if good or index == len(chain) - 1:
            break
        why = (
            f"failed ({(attempts[-1].error or '').split(':')[0]})"
            if reading is None
            else f"confidence {reading.confidence:.2f} < {settings.min_confidence:.2f}"
        )
        escalations.append(f"{name} {why}; {chain[index + 1]} read the page too")
    if not readings:
        errors = "; ".join(a.error or "" for a in attempts)
        raise OcrFailedError(f"no provider could read the page ({errors})"[:500])
    return ChainOutcome(
        reading=max(readings, key=lambda r: r.confidence),
        attempts=attempts,
        escalation="; ".join(escalations) or None,
    )


async def _quarter_turn(
    readers: Readers, name: str, page: PageImage, attempts: list[Attempt]
) -> tuple[PageImage, int, Reading | None]:
    """The page's lines run vertically but orientation detection is unsure (forms and receipts
    often are): read it turned a quarter each way and keep the turn that reads better."""
    best: tuple[PageImage, int, Reading | None] = (page, 0, None)
    for degrees in (90, 270):
        turned = rotate_upright(page, degrees)
        reading = await _attempt(readers, name, turned, degrees, attempts)
        if reading is not None and (best[2] is None or reading.confidence > best[2].confidence):
            best = (turned, degrees, reading)
    return best


async def _attempt(
    readers: Readers, name: str, page: PageImage, rotation: int, attempts: list[Attempt]
) -> Reading | None:
    """One provider on the page, recorded; None when it failed."""
    started = time.perf_counter()
    try:
        recognized = await readers.recognize(name, page)
    except ProviderError as exc:
        attempts.append(
            Attempt(
                provider=name,
                confidence=0.0,
                seconds=round(time.perf_counter() - started, 3),
                error=f"{exc.code}: {exc.message}"[:300],
            )
        )
        metrics.provider_attempt(name, exc.code)
        return None
    metrics.provider_attempt(name, None)
    if recognized.upside_down:  # the provider turned it itself: its geometry goes upright too
        recognized, rotation = turned_180(recognized), (rotation + 180) % 360
    reading = Reading(
        provider=name, page=recognized, confidence=reading_confidence(recognized), rotation=rotation
    )
    attempts.append(
        Attempt(
            provider=name,
            confidence=round(reading.confidence, 4),
            seconds=round(time.perf_counter() - started, 3),
        )
    )
    return reading
