"""The whole document as ALTO v4 XML (valid against the ALTO 4.4 schema; the tests check it).

Measurements in pixels of the page image the geometry refers to (`page_dimensions`). One
`Page` per page with a `PrintSpace` holding a `TextBlock` per block (its type, when not plain
text, as a `StructureTag`), a `TextLine` per line and a `String` per word with its confidence
(`WC`, 0..1), words separated by `SP`. A page that was not read is an empty `Page` with
`PAGECLASS="not-read"` and the error in `QUALITY_DETAIL`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from gateway.outputs.pages import Box, line_words, pixel_box, xml_safe
from gateway.outputs.tablecells import words_by_cell
from gateway.results import ContentBlock, PageDimensions, PageResult, Word

NAMESPACE = "http://www.loc.gov/standards/alto/ns-v4#"
SCHEMA_LOCATION = f"{NAMESPACE} http://www.loc.gov/standards/alto/v4/alto-4-4.xsd"
XSI = "http://www.w3.org/2001/XMLSchema-instance"


def _position(element: ET.Element, box: Box) -> None:
    left, top, right, bottom = box.rounded()
    element.set("HPOS", str(left))
    element.set("VPOS", str(top))
    element.set("WIDTH", str(max(right - left, 0)))
    element.set("HEIGHT", str(max(bottom - top, 0)))


def to_alto(
    pages: Sequence[PageResult],
    source_name: str | None = None,
    software: tuple[str, str] = ("ocr-gateway", ""),
) -> str:
    ET.register_namespace("", NAMESPACE)
    ET.register_namespace("xsi", XSI)
    q = f"{{{NAMESPACE}}}"
    root = ET.Element(f"{q}alto", {f"{{{XSI}}}schemaLocation": SCHEMA_LOCATION})
    root.set("SCHEMAVERSION", "4.4")
    description = ET.SubElement(root, f"{q}Description")
    ET.SubElement(description, f"{q}MeasurementUnit").text = "pixel"
    if source_name:
        info = ET.SubElement(description, f"{q}sourceImageInformation")
        ET.SubElement(info, f"{q}fileName").text = xml_safe(source_name)
    processing = ET.SubElement(description, f"{q}Processing", ID="processing")
    ET.SubElement(processing, f"{q}processingCategory").text = "contentGeneration"
    tool = ET.SubElement(processing, f"{q}processingSoftware")
    ET.SubElement(tool, f"{q}softwareName").text = software[0]
    if software[1]:
        ET.SubElement(tool, f"{q}softwareVersion").text = software[1]

    kinds = sorted({b.type for p in pages for b in p.content_blocks if b.type != "text"})
    if kinds:
        tags = ET.SubElement(root, f"{q}Tags")
        for kind in kinds:
            ET.SubElement(tags, f"{q}StructureTag", ID=f"type_{kind}", LABEL=kind)
    layout = ET.SubElement(root, f"{q}Layout")
    for page in pages:
        _page(ET.SubElement(layout, f"{q}Page"), page, q)
    ET.indent(root, space=" ")
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _page(element: ET.Element, page: PageResult, q: str) -> None:
    n = page.page_number
    element.set("ID", f"page_{n}")
    element.set("PHYSICAL_IMG_NR", str(n))
    meta = page.document_metadata
    if page.status == "failed" or meta is None:
        element.set("PAGECLASS", "not-read")
        if page.error is not None:
            element.set("QUALITY_DETAIL", xml_safe(f"{page.error.code}: {page.error.message}"))
        return
    size = meta.page_dimensions
    element.set("WIDTH", str(size.width))
    element.set("HEIGHT", str(size.height))
    element.set("PC", f"{min(max(meta.global_confidence, 0.0), 1.0):.4g}")
    space = ET.SubElement(element, f"{q}PrintSpace")
    _position(space, Box(0, 0, size.width, size.height))
    line_no = word_no = 0
    for block in page.content_blocks:
        if block.table is not None:
            line_no, word_no = _table(space, block, n, size, q, line_no, word_no)
            continue
        lines = [(line, words) for line in block.lines if (words := line_words(line))]
        if not lines:
            continue
        text_block = ET.SubElement(space, f"{q}TextBlock", ID=f"p{n}_b{block.block_id}")
        _position(text_block, pixel_box(block.geometry, size))
        if block.type != "text":
            text_block.set("TAGREFS", f"type_{block.type}")
        for line, words in lines:
            line_no += 1
            text_line = ET.SubElement(text_block, f"{q}TextLine", ID=f"p{n}_l{line_no}")
            _position(text_line, pixel_box(line.geometry, size))
            for i, word in enumerate(words):
                if i:
                    ET.SubElement(text_line, f"{q}SP")
                word_no += 1
                string = ET.SubElement(text_line, f"{q}String", ID=f"p{n}_w{word_no}")
                string.set("CONTENT", xml_safe(word.text))
                _position(string, pixel_box(word.geometry, size))
                string.set("WC", f"{min(max(word.confidence, 0.0), 1.0):.4g}")


def _strings(
    text_line: ET.Element, words: list[Word], n: int, size: PageDimensions, q: str, word_no: int
) -> int:
    for i, word in enumerate(words):
        if i:
            ET.SubElement(text_line, f"{q}SP")
        word_no += 1
        string = ET.SubElement(text_line, f"{q}String", ID=f"p{n}_w{word_no}")
        string.set("CONTENT", xml_safe(word.text))
        _position(string, pixel_box(word.geometry, size))
        string.set("WC", f"{min(max(word.confidence, 0.0), 1.0):.4g}")
    return word_no


def _table(
    space: ET.Element,
    block: ContentBlock,
    n: int,
    size: PageDimensions,
    q: str,
    line_no: int,
    word_no: int,
) -> tuple[int, int]:
    """A table block as a `ComposedBlock` of `TYPE="table"` holding a `TextBlock` per cell
    with words (its ID naming the cell's row and column, its words one `TextLine`) and one
    for words in no cell. Returns the last line and word numbers used."""
    by_cell, loose = words_by_cell(block)
    groups = [(f"p{n}_b{block.block_id}_r{c.row}c{c.column}", w) for c, w in by_cell if w]
    if loose:
        groups.append((f"p{n}_b{block.block_id}_rest", loose))
    if not groups:
        return line_no, word_no
    composed = ET.SubElement(space, f"{q}ComposedBlock", ID=f"p{n}_b{block.block_id}")
    _position(composed, pixel_box(block.geometry, size))
    composed.set("TAGREFS", "type_table")
    composed.set("TYPE", "table")
    for block_id, words in groups:
        boxes = [pixel_box(w.geometry, size) for w in words]
        box = Box(
            min(b.left for b in boxes),
            min(b.top for b in boxes),
            max(b.right for b in boxes),
            max(b.bottom for b in boxes),
        )
        text_block = ET.SubElement(composed, f"{q}TextBlock", ID=block_id)
        _position(text_block, box)
        line_no += 1
        text_line = ET.SubElement(text_block, f"{q}TextLine", ID=f"p{n}_l{line_no}")
        _position(text_line, box)
        word_no = _strings(text_line, words, n, size, q, word_no)
    return line_no, word_no
