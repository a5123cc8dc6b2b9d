"""What a read-results (004) request carries, however it came: a JSON body (`inputUrl` or
`inputURL`, or `base64`) or a multipart form (`file`, the other fields as text, `metadata` as
JSON), and the document's bytes (fetched under the gateway's address rules, decoded, or read
from the upload)."""

from __future__ import annotations

import binascii
from typing import Any

import msgspec
from litestar import Request
from litestar.datastructures import UploadFile

from gateway.errors import BadRequestError, PayloadTooLargeError
from gateway.services import Services
from gateway.store.tenants import Tenant
from gateway.work.fetch import document_limit, fetch_document


class OcrBody(msgspec.Struct, frozen=True, kw_only=True):
    """JSON body of `POST /ocr` (`inputUrl`, `inputURL` or `base64`)."""

    inputUrl: str | None = None  # noqa: N815 - the document's field names
    inputURL: str | None = None  # noqa: N815
    base64: str | None = None
    fileId: str | None = None  # noqa: N815
    forceBase64: bool = False  # noqa: N815 - accepted; the gateway always reads the bytes
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    webhook: str | None = None
    webhookSendFull: bool = True  # noqa: N815
    version: int | None = None


class ZipBody(OcrBody, frozen=True, kw_only=True):
    """JSON body of `POST /ocr/zip`."""

    statusId: str | None = None  # noqa: N815 - accepted and logged
    outputURL: str | None = None  # noqa: N815
    outputURLHeaders: dict[str, str] = msgspec.field(default_factory=dict)  # noqa: N815


class Request004(msgspec.Struct, frozen=True, kw_only=True):
    """A request as the handlers use it, whichever way it came."""

    body: OcrBody
    content: bytes
    file_name: str | None


def missing(*names: str) -> BadRequestError:
    return BadRequestError(f"Request body is missing required field(s): {', '.join(names)}")


def _decode_json(raw: bytes, kind: type[OcrBody]) -> OcrBody:
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise BadRequestError(f"Invalid request body: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise BadRequestError("The request body is not valid JSON") from exc


def _form_body(form: dict[str, Any]) -> OcrBody:
    """A multipart form's fields as the JSON body would carry them (metadata as JSON text)."""
    fields: dict[str, Any] = {
        k: v for k, v in form.items() if isinstance(v, str) and k in OcrBody.__struct_fields__
    }
    try:
        if "metadata" in fields:
            fields["metadata"] = msgspec.json.decode(fields["metadata"])
        for name in ("forceBase64", "webhookSendFull"):
            if name in fields:
                fields[name] = msgspec.json.decode(fields[name])
        if "version" in fields:
            fields["version"] = int(fields["version"])
        return msgspec.convert(fields, OcrBody, strict=True)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        raise BadRequestError(f"Invalid form field: {exc}") from exc


async def _document(body: OcrBody, services: Services, tenant: Tenant) -> tuple[bytes, str | None]:
    url = body.inputUrl or body.inputURL
    if url and body.base64:
        raise BadRequestError("send either inputUrl or base64, not both")
    limit = document_limit(services.settings, tenant.plan)
    if url:
        fetched = await fetch_document(url, services.settings.fetch, limit)
        return fetched.content, fetched.file_name
    if body.base64:
        if len(body.base64) > (limit * 4) // 3 + 4:
            raise PayloadTooLargeError(f"the file is over the limit of {limit} bytes")
        text = body.base64.split(",", 1)[1] if body.base64.startswith("data:") else body.base64
        try:
            return binascii.a2b_base64(text.encode("ascii"), strict_mode=True), None
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise BadRequestError("base64 is not valid base64") from exc
    raise missing("inputUrl")


async def read_request(request: Request[Any, Any, Any], kind: type[OcrBody]) -> Request004:
    services: Services = request.app.state.services
    tenant: Tenant = request.state.tenant
    media = request.content_type[0]
    if media == "application/json":
        body = _decode_json(await request.body(), kind)
        if isinstance(body, ZipBody):  # its required fields, before any fetch
            given = (
                ("inputURL", body.inputURL or body.inputUrl or body.base64),
                ("webhook", body.webhook),
            )
            absent = [name for name, value in given if not value]
            if absent:
                raise missing(*absent)
        content, name = await _document(body, services, tenant)
    elif media == "multipart/form-data" and kind is OcrBody:
        try:
            form = await request.form()
        except UnicodeDecodeError as exc:  # a part without a filename is text, and this is not
            raise BadRequestError("a form field that is not a file must be UTF-8 text") from exc
        body = _form_body(dict(form))
        upload = form.get("file")
        if isinstance(upload, UploadFile):
            content, name = await upload.read(), upload.filename
        else:
            content, name = await _document(body, services, tenant)
    else:
        accepted = "application/json" + (" or multipart/form-data" if kind is OcrBody else "")
        raise BadRequestError(f"Content-Type must be {accepted}")
    return Request004(body=body, content=content, file_name=name)
