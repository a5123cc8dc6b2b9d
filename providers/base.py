"""The provider protocol and the provider error tree.

    ProviderError                 any failure of an engine on a page
    ├── ProviderTimeoutError      the engine ran past its time limit
    └── ProviderUnavailableError  the engine cannot run at all (binary or model missing)

Each provider maps the foreign exceptions of its engine to these in one place.
"""

from __future__ import annotations

from typing import Protocol

from providers.types import PageImage, RecognizedPage


class ProviderError(Exception):
    code = "ocr_failed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ProviderTimeoutError(ProviderError):
    code = "ocr_timeout"


class ProviderUnavailableError(ProviderError):
    code = "provider_unavailable"


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
