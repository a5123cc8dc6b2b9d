"""The whole document as hOCR 1.2: one `ocr_page` per page, sized as the page image the
geometry refers to, then `ocr_carea` > `ocr_par` > `ocr_line` > `ocrx_word` for each block,
line and word, each with its `bbox` in those pixels and words with `x_wconf` (0..100).

A page that was not read is an `ocr_page` without lines, marked `data-status="failed"` and
`data-error-code="CODE"`, holding a paragraph (no hOCR class, so hOCR readers skip it) that
says why. (Its `title` keeps to properties the hOCR spec defines, as hOCR validators require.)
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from gateway.outputs.pages import Box, failure_note, line_words, pixel_box, xml_safe
from gateway.results import PageResult

CAPABILITIES = "ocr_page ocr_carea ocr_par ocr_line ocrx_word ocrp_wconf"
HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
    "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>{title}</title>
  <meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>
  <meta name="ocr-system" content="{system}"/>
  <meta name="ocr-capabilities" content="{capabilities}"/>
  <meta name="ocr-number-of-pages" content="{count}"/>
 </head>
 <body>
"""


def to_hocr(pages: Sequence[PageResult], source_name: str | None = None, system: str = "") -> str:
    title = escape(xml_safe(source_name or ""))
    parts = [
        HEAD.format(
            title=title,
            system=escape(system or "ocr-gateway"),
            capabilities=CAPABILITIES,
            count=len(pages),
        )
    ]
    for page in pages:
        parts.extend(page_hocr(page, source_name))
    parts.append(" </body>\n</html>\n")
    return "".join(parts)


def _bbox(box: Box) -> str:
    left, top, right, bottom = box.rounded()
    return f"bbox {left} {top} {right} {bottom}"


def _quoted(text: str) -> str:
    """A string property value: quoted, its own quotes and semicolons left out."""
    return '"' + xml_safe(text).replace('"', "'").replace(";", ",") + '"'


def page_hocr(page: PageResult, source_name: str | None) -> list[str]:
    n = page.page_number
    props = [f"image {_quoted(source_name)}"] if source_name else []
    meta = page.document_metadata
    if page.status == "failed" or meta is None:
        props.append(f"ppageno {n - 1}")
        code = escape(page.error.code) if page.error is not None else "page_failed"
        note = escape(xml_safe(failure_note(page)), quote=False)
        return [
            f'  <div class="ocr_page" id="page_{n}" title="{escape("; ".join(props))}"'
            f' data-status="failed" data-error-code="{code}">\n',
            f'   <p class="not_read">{note}</p>\n',
            "  </div>\n",
        ]
    size = meta.page_dimensions
    dpi = round(meta.dpi)
    props += [f"bbox 0 0 {size.width} {size.height}", f"ppageno {n - 1}", f"scan_res {dpi} {dpi}"]
    out = [f'  <div class="ocr_page" id="page_{n}" title="{escape("; ".join(props))}">\n']
    line_no = word_no = 0
    for block in page.content_blocks:
        box = _bbox(pixel_box(block.geometry, size))
        b = block.block_id
        out.append(f'   <div class="ocr_carea" id="block_{n}_{b}" title="{box}">\n')
        out.append(f'    <p class="ocr_par" id="par_{n}_{b}" title="{box}">\n')
        for line in block.lines:
            words = line_words(line)
            if not words:
                continue
            line_no += 1
            line_box = _bbox(pixel_box(line.geometry, size))
            out.append(f'     <span class="ocr_line" id="line_{n}_{line_no}" title="{line_box}">')
            for i, word in enumerate(words):
                word_no += 1
                title = (
                    f"{_bbox(pixel_box(word.geometry, size))}; x_wconf {_wconf(word.confidence)}"
                )
                space = " " if i else ""
                out.append(
                    f'{space}<span class="ocrx_word" id="word_{n}_{word_no}" title="{title}">'
                    f"{escape(xml_safe(word.text), quote=False)}</span>"
                )
            out.append("</span>\n")
        out.append("    </p>\n   </div>\n")
    out.append("  </div>\n")
    return out


def _wconf(confidence: float) -> int:
    return max(0, min(100, round(confidence * 100)))
