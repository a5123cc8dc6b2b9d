"""Tables as cells: structure found on a page, in the page's pixels, and the `Table` of a
table block built from it.

- `grid`: the cells of a found table (rows, columns, spans, text, pixel boxes) and the result's
  `Table` from them: cells with relative geometry, header rows, HTML; a table's markdown (a
  pipe table, or its HTML where cells span).
- `lattice`: tables drawn with ruling lines: cells from the lines' crossings (pdfplumber's
  geometry), text from the characters or words that fall in each cell.
- `stream`: tables without rules: rows of words in aligned columns, found and cut by the
  whitespace between them.
- `structure`: a table-structure model's answer (SLANet's HTML tokens, cell boxes) as a grid,
  with the OCR's words in its cells.
- `blocks`: a page's blocks with each table as one block in reading order, holding the lines
  (and their words) that lie in it.

Pure functions of boxes and text; reading PDFs and images for them is `gateway.work`'s
(`pdftables`, `imagetables`, `cellreads`, `pagetables`).
"""
