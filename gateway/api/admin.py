"""Admin API: tenants, plans, credits and API keys. Bearer token from the environment."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.openapi.spec import SecurityRequirement
from litestar.params import Parameter

from gateway.api.auth import require_admin
from gateway.api.errors import error_responses
from gateway.services import Services
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
ERRORS = (400, 403, 404, 429, 500)


class CreateTenantRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    plan: str = "free"
    credits: int = 0


class TenantCreated(msgspec.Struct, frozen=True, kw_only=True):
    tenant: Tenant
    api_key: str  # shown once; stored only as a hash


class TenantChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    plan: str | None = None
    allow_remote: bool | None = None


class CreditGrant(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    amount: int
    note: str = "admin grant"


class KeyCreated(msgspec.Struct, frozen=True, kw_only=True):
    key: ApiKeyInfo
    api_key: str  # shown once


class AdminController(Controller):
    path = "/admin"
    guards = [require_admin]  # noqa: RUF012 - Litestar's class-level configuration
    security = ADMIN_TOKEN
    tags = ["admin"]  # noqa: RUF012

    @post("/tenants", status_code=201, responses=error_responses(*ERRORS))
    async def create_tenant(self, data: CreateTenantRequest, services: Services
                            ) -> TenantCreated:
        check_plan(data.plan, services.settings.plans)
        tenant, key = await create_tenant(services.db, data.name, data.plan, data.credits)
        return TenantCreated(tenant=tenant, api_key=key)

    @get("/tenants", responses=error_responses(*ERRORS))
    async def list_tenants(self, services: Services,
                           limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
                           offset: Annotated[int, Parameter(ge=0)] = 0) -> list[Tenant]:
        return await list_tenants(services.db, limit, offset)

    @get("/tenants/{tenant_id:str}", responses=error_responses(*ERRORS))
    async def get_tenant(self, tenant_id: str, services: Services) -> Tenant:
        return await get_tenant(services.db, tenant_id)

    @patch("/tenants/{tenant_id:str}", responses=error_responses(*ERRORS))
    async def change_tenant(self, tenant_id: str, data: TenantChange, services: Services
                            ) -> Tenant:
        """Plan and remote-provider permission; take effect on the tenant's next request."""
        if data.plan is not None:
            check_plan(data.plan, services.settings.plans)
        return await update_tenant(services.db, tenant_id, plan=data.plan,
                                   allow_remote=data.allow_remote)

    @post("/tenants/{tenant_id:str}/credits", status_code=200, responses=error_responses(*ERRORS))
    async def grant(self, tenant_id: str, data: CreditGrant, services: Services) -> Tenant:
        return await grant_credits(services.db, tenant_id, data.amount, data.note)

    @post("/tenants/{tenant_id:str}/keys", status_code=201, responses=error_responses(*ERRORS))
    async def create_key(self, tenant_id: str, services: Services) -> KeyCreated:
        info, key = await create_key(services.db, tenant_id)
        return KeyCreated(key=info, api_key=key)

    @get("/tenants/{tenant_id:str}/keys", responses=error_responses(*ERRORS))
    async def list_keys(self, tenant_id: str, services: Services) -> list[ApiKeyInfo]:
        return await list_keys(services.db, tenant_id)

    @delete("/keys/{key_id:str}", status_code=204, responses=error_responses(*ERRORS))
    async def revoke_key(self, key_id: str, services: Services) -> None:
        """Revocation is immediate: the key's next request is 401."""
        await revoke_key(services.db, key_id)
