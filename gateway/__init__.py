"""ocr-gateway: the HTTP service, job store, worker and page pipeline."""
