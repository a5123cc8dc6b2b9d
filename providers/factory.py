"""Build providers from their config entries: one line per kind."""

from __future__ import annotations

from providers.base import Provider
from providers.rapidocr import RapidOCRConfig, RapidOCRProvider
from providers.tesseract import TesseractConfig, TesseractProvider

ProviderConfig = RapidOCRConfig | TesseractConfig


def build_provider(name: str, config: ProviderConfig) -> Provider:
    match config:
        case RapidOCRConfig():
            return RapidOCRProvider(name, config)
        case TesseractConfig():
            return TesseractProvider(name, config)
