"""The work: accepting documents, the process pool, the worker loop and the page pipeline
(documents -> render -> read by the planned route -> layout). Imports the store, never the API."""
