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
from gateway.outputs.tablecells import words_by_cell
from gateway.results import ContentBlock, PageDimensions, PageResult, Word

CAPABILITIES = "ocr_page ocr_carea ocr_par ocr_line ocrx_word ocr_table ocrp_wconf"
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
        if block.table is not None:
            parts, line_no, word_no = table_hocr(block, n, size, line_no, word_no)
            out += parts
            continue
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


def _words(words: list[Word], n: int, size: PageDimensions, first: int) -> str:
    spans = []
    for i, word in enumerate(words):
        title = f"{_bbox(pixel_box(word.geometry, size))}; x_wconf {_wconf(word.confidence)}"
        spans.append(
            f'{" " if i else ""}<span class="ocrx_word" id="word_{n}_{first + i}" title="{title}">'
            f"{escape(xml_safe(word.text), quote=False)}</span>"
        )
    return "".join(spans)


def _words_box(words: list[Word], size: PageDimensions) -> str:
    boxes = [pixel_box(w.geometry, size) for w in words]
    return _bbox(
        Box(
            min(b.left for b in boxes),
            min(b.top for b in boxes),
            max(b.right for b in boxes),
            max(b.bottom for b in boxes),
        )
    )


def table_hocr(
    block: ContentBlock, n: int, size: PageDimensions, line_no: int, word_no: int
) -> tuple[list[str], int, int]:
    """A table block as an `ocr_table` holding an HTML table: a cell's words are one
    `ocr_line` in its `<td>` (with the cell's `bbox`), words in no cell a paragraph after it.
    Returns the parts and the last line and word numbers used."""
    assert block.table is not None
    by_cell, loose = words_by_cell(block)
    b = block.block_id
    box = _bbox(pixel_box(block.geometry, size))
    out = [f'   <div class="ocr_table" id="table_{n}_{b}" title="{box}">\n    <table>\n']
    row = -1
    words_out = 0
    for cell, words in by_cell:
        if cell.row != row:
            out.append("     </tr>\n" if row >= 0 else "")
            out.append("     <tr>")
            row = cell.row
        spans = (f' rowspan="{cell.row_span}"' if cell.row_span > 1 else "") + (
            f' colspan="{cell.column_span}"' if cell.column_span > 1 else ""
        )
        tag = "th" if cell.is_header else "td"
        cell_box = _bbox(pixel_box(cell.geometry, size))
        out.append(f'<{tag}{spans} title="{cell_box}">')
        if words:
            line_no += 1
            out.append(
                f'<span class="ocr_line" id="line_{n}_{line_no}" title="{_words_box(words, size)}">'
                f"{_words(words, n, size, word_no + words_out + 1)}</span>"
            )
            words_out += len(words)
        out.append(f"</{tag}>")
    if row >= 0:
        out.append("</tr>\n")
    out.append("    </table>\n")
    if loose:
        line_no += 1
        out.append(
            f'    <p class="ocr_par" id="par_{n}_{b}" title="{_words_box(loose, size)}">'
            f'<span class="ocr_line" id="line_{n}_{line_no}" title="{_words_box(loose, size)}">'
            f"{_words(loose, n, size, word_no + words_out + 1)}</span></p>\n"
        )
        words_out += len(loose)
    out.append("   </div>\n")
    return out, line_no, word_no + words_out


def _wconf(confidence: float) -> int:
    return max(0, min(100, round(confidence * 100)))
