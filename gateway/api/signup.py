"""Self-service signup (`POST /api/signup`), enabled by `signup.enabled`."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Request, post

from gateway.api.errors import error_responses
from gateway.api.ratelimit import parse_rule
from gateway.services import Services
from gateway.store.tenants import signup

SIGNUPS_PER_ADDRESS = parse_rule("10/hour")  # per client address: keeps scripted farming slow


# The address check of `signup` in the store (`[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+`), stated in
# the schema. `\s` is spelled out as the union of what Python and ECMA-262 (the schema's regex
# dialect) count as white space, and the end is `(?![\s\S])`, not `$`, which Python also finds
# before a final newline: so both sides refuse the same addresses.
SPACE = r"\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
EMAIL_PATTERN = rf"^[^@{SPACE}]{{1,64}}@[^@{SPACE}.]+(\.[^@{SPACE}.]+)+(?![\s\S])"


class SignupRequest(msgspec.Struct, frozen=True, kw_only=True):
    email: Annotated[str, msgspec.Meta(pattern=EMAIL_PATTERN, max_length=254)]


class SignupResponse(msgspec.Struct, frozen=True, kw_only=True):
    api_key: str  # shown once; stored only as a hash
    tenant_id: str
    plan: str
    credits: int


@post(
    "/api/signup",
    status_code=200,
    tags=["account"],
    summary="Create an account",
    responses=error_responses(409, 413, 429, 500, 503),
)
async def create_account(
    data: SignupRequest,
    request: Request,  # type: ignore[type-arg]
    services: Services,
) -> SignupResponse:
    """An email gets an API key and the configured free credits. 409 if the account exists."""
    client = request.client.host if request.client else "unknown"
    await services.rate_limiter.hit("signup", client, SIGNUPS_PER_ADDRESS)
    config = services.settings.signup
    tenant, key = await signup(services.db, data.email, config.plan, config.free_credits)
    return SignupResponse(
        api_key=key, tenant_id=tenant.id, plan=tenant.plan, credits=tenant.credits_available
    )
