"""The glyphless font of the invisible text layer (as Tesseract and OCRmyPDF draw theirs).

A Type0 font with Identity-H encoding: each character is drawn as the two-byte code of its
Unicode code point (BMP; others become U+FFFD), every code maps to the one empty glyph of an
embedded TrueType program, 500/1000 em wide, and the ToUnicode map gives each code back as the
character, so extraction, search and selection read the text. The font's ascent and descent
(800, -200) span exactly one em: at a font size equal to a word box's height, with the baseline
a fifth of the way up, the text's extent is the box.
"""

from __future__ import annotations

import functools
import io

import pikepdf
from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen

FONT_NAME = "GlyphLessFont"
ADVANCE = 500  # every glyph's width, 1/1000 em
ASCENT, DESCENT = 800, -200
_SURROGATES = range(0xD8, 0xE0)  # high bytes of UTF-16 surrogates: no character of their own


@functools.cache
def glyphless_program() -> bytes:
    """A TrueType font of two empty glyphs (.notdef and the one every code draws)."""
    builder = FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder([".notdef", "empty"])
    builder.setupCharacterMap({0x20: "empty"})
    empty = TTGlyphPen(None).glyph()
    builder.setupGlyf({".notdef": empty, "empty": empty})
    builder.setupHorizontalMetrics({".notdef": (ADVANCE, 0), "empty": (ADVANCE, 0)})
    builder.setupHorizontalHeader(ascent=ASCENT, descent=DESCENT)
    builder.setupNameTable({"familyName": FONT_NAME, "styleName": "Regular"})
    builder.setupOS2(
        sTypoAscender=ASCENT,
        sTypoDescender=DESCENT,
        usWinAscent=ASCENT,
        usWinDescent=-DESCENT,
    )
    builder.setupPost()
    out = io.BytesIO()
    builder.save(out)
    return out.getvalue()


def _to_unicode() -> bytes:
    ranges = [
        f"<{hi:02X}00> <{hi:02X}FF> <{hi:02X}00>" for hi in range(256) if hi not in _SURROGATES
    ]
    blocks = [ranges[i : i + 100] for i in range(0, len(ranges), 100)]  # at most 100 per block
    body = "".join(
        f"{len(block)} beginbfrange\n" + "\n".join(block) + "\nendbfrange\n" for block in blocks
    )
    return (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
        "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
        + body
        + "endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
    ).encode("ascii")


def add_glyphless_font(pdf: pikepdf.Pdf) -> pikepdf.Object:
    """The font, added to `pdf` once: the indirect object each page's resources name."""
    descriptor = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.FontDescriptor,
            FontName=pikepdf.Name("/" + FONT_NAME),
            Flags=5,  # fixed pitch, symbolic
            FontBBox=[0, DESCENT, ADVANCE, ASCENT],
            ItalicAngle=0,
            Ascent=ASCENT,
            Descent=DESCENT,
            CapHeight=ASCENT,
            StemV=80,
            FontFile2=pikepdf.Stream(pdf, glyphless_program()),
        )
    )
    cid_font = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font,
            Subtype=pikepdf.Name.CIDFontType2,
            BaseFont=pikepdf.Name("/" + FONT_NAME),
            CIDSystemInfo=pikepdf.Dictionary(
                Registry=pikepdf.String("Adobe"),
                Ordering=pikepdf.String("Identity"),
                Supplement=0,
            ),
            FontDescriptor=descriptor,
            DW=ADVANCE,
            CIDToGIDMap=pikepdf.Stream(pdf, b"\x00\x01" * 65536),  # every code: glyph 1
        )
    )
    return pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font,
            Subtype=pikepdf.Name.Type0,
            BaseFont=pikepdf.Name("/" + FONT_NAME),
            Encoding=pikepdf.Name("/Identity-H"),
            DescendantFonts=[cid_font],
            ToUnicode=pikepdf.Stream(pdf, _to_unicode()),
        )
    )


def encode_text(text: str) -> str:
    """The text as the font's codes, a PDF hex string."""
    codes = (
        ord(c) if ord(c) <= 0xFFFF and not 0xD800 <= ord(c) <= 0xDFFF else 0xFFFD for c in text
    )
    return "<" + "".join(f"{code:04X}" for code in codes) + ">"
