"""A document's language hint, and the routes that honour it (pure).

`resolve` turns a client's hint ("polish", "pl", "pol", "auto") into a Tesseract language code,
or None for `auto` (today's reading: each engine's default). `with_language` gives each page
routed to an engine the language to read in, and keeps only the engines that have that
language's pack (Tesseract, with the packs scripts/setup installs); RapidOCR's PP-OCR models
read Chinese and English only, so a non-English page no longer goes to it first.
"""

from __future__ import annotations

import msgspec

from router.policy import TEXT_LAYER, PageRoute

AUTO = "auto"
ENGLISH = "eng"
# name -> Tesseract code; the codes are Debian's tesseract-ocr-<code> packs
LANGUAGES = {
    "english": "eng",
    "french": "fra",
    "german": "deu",
    "spanish": "spa",
    "italian": "ita",
    "portuguese": "por",
    "polish": "pol",
    "dutch": "nld",
}
_ALIASES = {
    **{code: code for code in LANGUAGES.values()},
    **{"en": "eng", "fr": "fra", "de": "deu", "es": "spa", "it": "ita", "pt": "por"},
    **{"pl": "pol", "nl": "nld", "fre": "fra", "ger": "deu", "dut": "nld"},
}


class UnknownLanguageError(ValueError):
    """A hint that names no language the gateway reads."""


def accepted() -> list[str]:
    """Every hint `resolve` takes, `auto` first, then the names, then the codes."""
    return [AUTO, *LANGUAGES, *sorted(_ALIASES)]


def resolve(hint: str | None) -> str | None:
    """The Tesseract code of a hint (case and spaces ignored); None for auto or no hint."""
    key = (hint or AUTO).strip().lower()
    if key == AUTO:
        return None
    code = LANGUAGES.get(key) or _ALIASES.get(key)
    if code is None:
        raise UnknownLanguageError(f"unknown language {hint!r}; accepted: {', '.join(accepted())}")
    return code


def with_language(
    routes: list[PageRoute], language: str | None, readers: frozenset[str]
) -> list[PageRoute]:
    """`routes` reading in `language`: each OCR route carries the code, and a non-English one
    keeps only the providers of its chain in `readers` (those that have the language), when it
    has any. Text-layer routes are unchanged: the PDF's own text needs no language."""
    if language is None:
        return routes
    out = []
    for route in routes:
        if route.providers == [TEXT_LAYER]:
            out.append(route)
            continue
        chain, reason = route.providers, f"language {language}"
        if language != ENGLISH:
            able = [p for p in chain if p in readers] or sorted(readers)
            if able and able != chain:
                reason += f": read by {', '.join(able)}, which have it"
                chain = able
            elif not able:
                reason += ": no configured engine has it"
        out.append(
            msgspec.structs.replace(
                route, providers=chain, language=language, reason=f"{route.reason}; {reason}"
            )
        )
    return out
