"""A typed Python client of the native API, sync (`Client`) and async (`AsyncClient`), on httpx.

    from gateway.client import Client

    with Client("http://127.0.0.1:8080", api_key=KEY) as ocr:
        job = ocr.submit("scan.pdf", mode="fast")     # a path, bytes, a file object, or url=...
        done = ocr.wait(job.jobId)                    # long-polls GET /v1/jobs/{id}?wait=30
        markdown = ocr.result(job.jobId, "markdown").decode()

Answers are decoded into the server's own Structs (`SubmitResponse`, `JobResult`, `JobList`,
`Balance`, ...). An error answer raises `ApiError` carrying the API's `code`, `message`,
`details` and HTTP status; a `202` "not ready" answer of a result or a preview raises its
subclass `NotReadyError`. `429` and `503` are retried after the `Retry-After` the server sent
(exponential backoff without one), and so are connection failures, up to `retries` times; a
Retry-After longer than `max_retry_wait_s` is not waited for. Every submit carries an
`Idempotency-Key` (generated unless given), so a retried submit never makes or charges a second
job.
"""

from gateway.client.aio import AsyncClient
from gateway.client.base import ApiError, NotReadyError, WaitTimeoutError
from gateway.client.sync import Client

__all__ = ["ApiError", "AsyncClient", "Client", "NotReadyError", "WaitTimeoutError"]
