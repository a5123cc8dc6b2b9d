"""Admin API: tenants, plans, credits and API keys. Bearer token from the environment."""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.openapi.spec import OpenAPI, Schema, SecurityRequirement
from litestar.params import Body, Parameter

from gateway.api.auth import require_admin
from gateway.api.errors import error_responses
from gateway.api.schemas import MAX_CREDITS, MAX_OFFSET, Credits
from gateway.services import Services
from gateway.store import outbox
from gateway.store.tenants import (
    ApiKeyInfo,
    Tenant,
    check_plan,
    create_key,
    create_tenant,
    get_tenant,
    grant_credits,
    list_keys,
    list_tenants,
    revoke_key,
    update_tenant,
)

ADMIN_TOKEN: list[SecurityRequirement] = [{"AdminToken": []}]
ADMIN_ERRORS = {
    401: "Missing or wrong admin token (Authorization: Bearer ...)",
    403: "The admin API is disabled: no admin token is configured",
}
READ = (401, 403, 429, 500)
WRITE = (*READ, 413)  # routes with a body: its size is limited
# The request Structs forbid unknown fields; the schema says so.
STRICT = Body(schema_extra={"additionalProperties": False})
PLAN_FIELDS = {"CreateTenantRequest": "plan", "TenantChange": "plan"}


class CreateTenantRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    plan: str = "free"  # one of the configured plans (the schema lists them)
    credits: Annotated[int, msgspec.Meta(ge=0, le=MAX_CREDITS)] = 0


class TenantCreated(msgspec.Struct, frozen=True, kw_only=True):
    tenant: Tenant
    api_key: str  # shown once; stored only as a hash


class TenantChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    plan: str | None = None
    allow_remote: bool | None = None


class CreditGrant(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    amount: Credits
    note: str = "admin grant"


class KeyCreated(msgspec.Struct, frozen=True, kw_only=True):
    key: ApiKeyInfo
    api_key: str  # shown once


class WebhookSecret(msgspec.Struct, frozen=True, kw_only=True):
    secret: str  # whsec_...: what Standard Webhooks libraries verify the tenant's webhooks with


class AdminController(Controller):
    path = "/admin"
    guards = [require_admin]  # noqa: RUF012 - Litestar's class-level configuration
    security = ADMIN_TOKEN
    tags = ["admin"]  # noqa: RUF012

    @post("/tenants", status_code=201, responses=error_responses(*WRITE, described=ADMIN_ERRORS))
    async def create_tenant(
        self, data: Annotated[CreateTenantRequest, STRICT], services: Services
    ) -> TenantCreated:
        check_plan(data.plan, services.settings.plans)
        tenant, key = await create_tenant(services.db, data.name, data.plan, data.credits)
        return TenantCreated(tenant=tenant, api_key=key)

    @get("/tenants", responses=error_responses(*READ, described=ADMIN_ERRORS))
    async def list_tenants(
        self,
        services: Services,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
        offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET)] = 0,
    ) -> list[Tenant]:
        return await list_tenants(services.db, limit, offset)

    @get("/tenants/{tenant_id:str}", responses=error_responses(*READ, 404, described=ADMIN_ERRORS))
    async def get_tenant(self, tenant_id: str, services: Services) -> Tenant:
        return await get_tenant(services.db, tenant_id)

    @patch(
        "/tenants/{tenant_id:str}", responses=error_responses(*WRITE, 404, described=ADMIN_ERRORS)
    )
    async def change_tenant(
        self, tenant_id: str, data: Annotated[TenantChange, STRICT], services: Services
    ) -> Tenant:
        """Plan and remote-provider permission; take effect on the tenant's next request. An
        absent or null field is left as it is."""
        if data.plan is not None:
            check_plan(data.plan, services.settings.plans)
        return await update_tenant(
            services.db, tenant_id, plan=data.plan, allow_remote=data.allow_remote
        )

    @post(
        "/tenants/{tenant_id:str}/credits",
        status_code=200,
        responses=error_responses(*WRITE, 404, described=ADMIN_ERRORS),
    )
    async def grant(
        self, tenant_id: str, data: Annotated[CreditGrant, STRICT], services: Services
    ) -> Tenant:
        return await grant_credits(services.db, tenant_id, data.amount, data.note)

    @post(
        "/tenants/{tenant_id:str}/keys",
        status_code=201,
        responses=error_responses(*READ, 404, described=ADMIN_ERRORS),
    )
    async def create_key(self, tenant_id: str, services: Services) -> KeyCreated:
        info, key = await create_key(services.db, tenant_id)
        return KeyCreated(key=info, api_key=key)

    @get(
        "/tenants/{tenant_id:str}/keys",
        responses=error_responses(*READ, 404, described=ADMIN_ERRORS),
    )
    async def list_keys(self, tenant_id: str, services: Services) -> list[ApiKeyInfo]:
        return await list_keys(services.db, tenant_id)

    @delete(
        "/keys/{key_id:str}",
        status_code=204,
        responses=error_responses(*READ, 404, described=ADMIN_ERRORS),
    )
    async def revoke_key(self, key_id: str, services: Services) -> None:
        """Revocation is immediate: the key's next request is 401."""
        await revoke_key(services.db, key_id)

    @get(
        "/tenants/{tenant_id:str}/webhook-secret",
        responses=error_responses(*READ, 404, described=ADMIN_ERRORS),
    )
    async def webhook_secret(self, tenant_id: str, services: Services) -> WebhookSecret:
        """The secret the tenant's job webhooks are signed with (made on first use)."""
        await get_tenant(services.db, tenant_id)
        return WebhookSecret(secret=await outbox.signing_secret(services.db, tenant_id))

    @post(
        "/tenants/{tenant_id:str}/webhook-secret",
        status_code=201,
        responses=error_responses(*READ, 404, described=ADMIN_ERRORS),
    )
    async def rotate_webhook_secret(self, tenant_id: str, services: Services) -> WebhookSecret:
        """A new secret: every webhook delivery from now on, retries included, is signed with
        it."""
        return WebhookSecret(secret=await outbox.rotate_secret(services.db, tenant_id))


def document_plans(openapi: OpenAPI, plans: Collection[str]) -> None:
    """Plans are configuration, not types: name the configured ones in the schema of every
    request field that takes a plan, so the schema refuses exactly what `check_plan` refuses."""
    assert openapi.components is not None
    for component, field in PLAN_FIELDS.items():
        properties = openapi.components.schemas[component].properties
        assert properties is not None
        prop = properties[field]
        for branch in (prop, *(getattr(prop, "one_of", None) or ())):
            if isinstance(branch, Schema) and branch.type == "string":
                branch.enum = sorted(plans)
