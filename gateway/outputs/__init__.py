"""A finished job's pages as the documents users take away.

Pure functions of the page results (`gateway.results.PageResult`), one module per format:
`markdown`, `text`, `hocr`, `alto`, and `pdf` (a searchable PDF: each page's image under an
invisible text layer, the one format that also reads the upload). `pages` holds what every
format reads off a page: its words (or a line split by character counts while it has none),
pixel boxes, and the note that marks a page that was not read. `formats` names the formats
with their media types and file suffixes. Nothing here imports the API, the store or the work
pipeline: the callers hand in the results, and for the PDF a function that renders a page.
"""
