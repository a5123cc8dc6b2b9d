"""A language hint against `auto` on the corpus's non-English print: accented letters kept.

Two pages: `f_pdfs/ocrmypdf/francais.pdf` (the French pangram "Portez ce vieux whisky...",
24 accented letters) and `a_clean_printed/tesseract/eurotext.tif` (German, French, Italian,
Spanish and Portuguese sentences; its ground truth has 6 accented letters). Each page is
rendered as the pipeline renders it and read by every local engine of config.yaml, as `auto`
reads it (each engine's default), then by Tesseract in each language the hint can name. A
letter is "kept" when the reading has it (multiset of non-ASCII letters, NFC), so a reading
that drops the accent ("a" for "à") loses it and one that adds accents gains nothing.

    python -m benchmarks.language_hint
"""

from __future__ import annotations

import collections
import unicodedata
from pathlib import Path

import msgspec

from gateway.config import load_settings
from gateway.work.documents import DocumentKind, render_page
from providers.factory import build_provider, is_local
from providers.tesseract import TesseractConfig
from providers.types import PageImage, RecognizedPage
from router.language import LANGUAGES
from tests.support.gateway_process import CORPUS, REPO

PANGRAM = (
    "Portez ce vieux whisky au juge blond qui fume sur son île intérieure, à côté de l'alcôve "
    "ovoïde, où les bûches se consument dans l'âtre, ce qui lui permet de penser à la "
    "cænogénèse de l'être dont il est question dans la cause ambiguë entendue à Moÿ, dans un "
    "capharnaüm qui, pense-t-il, diminue çà et là la qualité de son œuvre."
)
PAGES = {
    "francais.pdf": (CORPUS / "f_pdfs/ocrmypdf/francais.pdf", DocumentKind.PDF, None),
    "eurotext.tif": (
        CORPUS / "a_clean_printed/tesseract/eurotext.tif",
        DocumentKind.TIFF,
        CORPUS / "a_clean_printed/tesseract/eurotext.gt.txt",
    ),
}


def accented(text: str) -> collections.Counter[str]:
    return collections.Counter(
        c for c in unicodedata.normalize("NFC", text) if c.isalpha() and not c.isascii()
    )


def kept(reference: str, reading: RecognizedPage) -> tuple[int, int]:
    want, got = accented(reference), accented(" ".join(line.text for line in reading.lines))
    return sum(min(n, got[c]) for c, n in want.items()), sum(want.values())


def main() -> None:
    settings = load_settings(REPO / "config.yaml")
    engines = {
        name: build_provider(name, config)
        for name, config in settings.providers.items()
        if is_local(config)
    }
    tesseract = next(
        name for name, c in settings.providers.items() if isinstance(c, TesseractConfig)
    )
    print("| page | reading | accented letters kept |")
    print("|---|---|---|")
    for label, (path, kind, truth) in PAGES.items():
        reference = truth.read_text() if truth is not None else PANGRAM
        page: PageImage = render_page(
            Path(path),
            kind,
            0,
            dpi=settings.rendering.dpi,
            max_pixels=settings.limits.max_pixels_per_page,
        )
        for name, engine in engines.items():
            found, total = kept(reference, engine.recognize(page))
            print(f"| {label} | auto: {name} | {found} of {total} |")
        for language, code in LANGUAGES.items():
            hinted = msgspec.structs.replace(page, language=code)
            found, total = kept(reference, engines[tesseract].recognize(hinted))
            print(f"| {label} | {language}: {tesseract} -l {code} | {found} of {total} |")


if __name__ == "__main__":
    main()
