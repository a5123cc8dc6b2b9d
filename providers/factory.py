"""Build providers from their config entries: one line per kind.

Local kinds run inside the worker processes (`build_provider`); remote kinds run in the
gateway's event loop and own an HTTP client (`build_remote_provider`).
"""

from __future__ import annotations

from typing import TypeGuard

import httpx

from providers.base import Provider, RemoteProvider
from providers.rapidocr import RapidOCRConfig, RapidOCRProvider
from providers.remote_gateway import GatewayProvider, GatewayProviderConfig
from providers.remote_openai import OpenAIVisionConfig, OpenAIVisionProvider
from providers.tesseract import TesseractConfig, TesseractProvider

LocalProviderConfig = RapidOCRConfig | TesseractConfig
RemoteProviderConfig = OpenAIVisionConfig | GatewayProviderConfig
ProviderConfig = LocalProviderConfig | RemoteProviderConfig


def is_remote(config: ProviderConfig) -> TypeGuard[RemoteProviderConfig]:
    return isinstance(config, OpenAIVisionConfig | GatewayProviderConfig)


def is_local(config: ProviderConfig) -> TypeGuard[LocalProviderConfig]:
    return not is_remote(config)


def build_provider(name: str, config: LocalProviderConfig) -> Provider:
    match config:
        case RapidOCRConfig():
            return RapidOCRProvider(name, config)
        case TesseractConfig():
            return TesseractProvider(name, config)


def build_remote_provider(
    name: str, config: RemoteProviderConfig, transport: httpx.AsyncBaseTransport | None = None
) -> RemoteProvider:
    """Call inside the event loop that will use it; `aclose()` it at shutdown."""
    match config:
        case OpenAIVisionConfig():
            return OpenAIVisionProvider(name, config, transport)
        case GatewayProviderConfig():
            return GatewayProvider(name, config, transport)
