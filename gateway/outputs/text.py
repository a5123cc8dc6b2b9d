"""The whole document as plain text: blocks separated by a blank line, pages by a form feed
(as `pdftotext` separates them); a table its cells row by row (` | ` between cells); a page
that was not read says so in brackets."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.outputs.pages import failure_note
from gateway.results import PageResult

PAGE_BREAK = "\f"


def to_text(pages: Sequence[PageResult]) -> str:
    return PAGE_BREAK.join(page_text(page) + "\n" for page in pages)


def page_text(page: PageResult) -> str:
    if page.status == "failed":
        return f"[{failure_note(page)}]"
    blocks = (
        block.text if block.table is not None else "\n".join(line.text for line in block.lines)
        for block in page.content_blocks
    )
    return "\n\n".join(block for block in blocks if block.strip())
