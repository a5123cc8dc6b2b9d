"""The provider protocols: a local engine and a provider behind the network.

Providers raise only `providers.errors.ProviderError` subclasses (the tree is drawn there).
"""

from __future__ import annotations

from typing import Protocol

# Transition: gateway/work (pipeline, worker, remote) and tests still import these from here; the
# lead moves those imports to `providers.errors` and removes these re-exports (`X as X`).
from providers.errors import ProviderError as ProviderError
from providers.errors import ProviderTimeoutError as ProviderTimeoutError
from providers.errors import ProviderUnavailableError as ProviderUnavailableError
from providers.types import PageImage, RecognizedPage


class Provider(Protocol):
    """A local engine. Runs synchronously inside a worker process; one page at a time."""

    name: str

    def recognize(self, page: PageImage) -> RecognizedPage: ...


class RemoteProvider(Protocol):
    """A provider behind the network (a VLM server, another gateway). Async, runs in the
    gateway's event loop, owns one `httpx.AsyncClient`, and bounds its own concurrency."""

    name: str

    async def recognize(self, page: PageImage) -> RecognizedPage: ...

    def state(self) -> dict[str, object]:
        """For /health: circuit breaker state, in-flight calls, recent failures."""
        ...

    async def aclose(self) -> None: ...
