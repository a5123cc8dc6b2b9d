"""The provider protocols: a local engine and a provider behind the network.

Providers raise only `providers.errors.ProviderError` subclasses (the tree is drawn there).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from providers.types import PageHints, PageImage, RecognizedPage


class Provider(Protocol):
    """A local engine. Runs synchronously inside a worker process; one page at a time."""

    name: str

    def recognize(self, page: PageImage) -> RecognizedPage: ...


@runtime_checkable
class UsesIdleCores(Protocol):
    """A local engine that can spread a page over the cores of its idle sibling processes."""

    def use_idle_cores(self, idle_siblings: Callable[[], int], siblings: int) -> None: ...


class RemoteProvider(Protocol):
    """A provider behind the network (a VLM server, another gateway). Async, runs in the
    gateway's event loop, owns one `httpx.AsyncClient`, and bounds its own concurrency."""

    name: str
    wants_line_boxes: bool  # takes the page's detected line boxes as hints (a VLM's geometry)

    async def recognize(
        self, page: PageImage, hints: PageHints | None = None
    ) -> RecognizedPage: ...

    def state(self) -> dict[str, object]:
        """For /health: circuit breaker state, in-flight calls, recent failures."""
        ...

    async def aclose(self) -> None: ...
