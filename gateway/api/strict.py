"""Request bodies held to their schema's types, not to Litestar's lax conversion.

Litestar converts a body to its Struct in msgspec's lax mode: `"5"` passes for 5, and `0`, `1` or
`"true"` for a boolean. The schema allows none of that. `check_body_types` runs before that
conversion (after the guards): a JSON body is converted strictly into the handler's Struct (a
whole number written `5.0` is still an integer, as JSON Schema has it), and a form, whose
fields are all text, must spell its booleans as JSON does, `true` or `false`.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.enums import RequestEncodingType

from gateway.errors import BadRequestError

FORM_BOOLEANS = ("true", "false")


def _is_bool(info: msgspec.inspect.Type) -> bool:
    if isinstance(info, msgspec.inspect.UnionType):
        return any(_is_bool(member) for member in info.types)
    if isinstance(info, msgspec.inspect.Metadata):
        return _is_bool(info.type)
    return isinstance(info, msgspec.inspect.BoolType)


def whole_floats_as_ints(value: Any) -> Any:
    """`value` (decoded JSON) with every float that is a whole number made an int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [whole_floats_as_ints(item) for item in value]
    if isinstance(value, dict):
        return {key: whole_floats_as_ints(item) for key, item in value.items()}
    return value


def boolean_fields(struct: type[msgspec.Struct]) -> list[str]:
    """The fields of `struct` that take a boolean (alone or in a union)."""
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType)
    return [field.encode_name for field in info.fields if _is_bool(field.type)]


async def check_body_types(request: Request[Any, Any, Any]) -> None:
    """Litestar `before_request` hook: a 400 for a body whose values are not of their type."""
    field = request.route_handler.parsed_data_field
    if (
        field is None
        or not isinstance(field.annotation, type)
        or not issubclass(field.annotation, msgspec.Struct)
    ):
        return
    struct: type[msgspec.Struct] = field.annotation
    media_type = request.content_type[0]
    if media_type == RequestEncodingType.JSON:
        try:
            decoded = msgspec.json.decode(await request.body())
        except msgspec.DecodeError:
            return  # not JSON at all: Litestar says so in its own words
        try:
            msgspec.convert(whole_floats_as_ints(decoded), type=struct, strict=True)
        except msgspec.ValidationError as exc:
            raise BadRequestError(
                f"Validation failed for {request.method} {request.url.path}: {exc}"
            ) from exc
    elif media_type == RequestEncodingType.MULTI_PART:
        try:
            form = await request.form()
        except UnicodeDecodeError as exc:  # a part without a filename is text, and this is not
            raise BadRequestError(
                "a form field that is not a file (no filename) must be UTF-8 text"
            ) from exc
        for name in boolean_fields(struct):
            value = form.get(name)
            if value is not None and value not in FORM_BOOLEANS:
                raise BadRequestError(f"{name} must be true or false")
