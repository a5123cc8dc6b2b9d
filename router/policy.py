"""Which provider reads a page.

Until per-page complexity routing lands, the configured provider reads every page; the decision
still carries its reason so `pipeline_metadata.provider_reason` always explains itself.
"""

from __future__ import annotations

from typing import Protocol

import msgspec


class PipelinePolicy(Protocol):
    @property
    def provider(self) -> str: ...


class RouteDecision(msgspec.Struct, frozen=True, kw_only=True):
    provider: str
    reason: str


def choose_provider(policy: PipelinePolicy) -> RouteDecision:
    return RouteDecision(
        provider=policy.provider,
        reason=f"{policy.provider} reads every page (pipeline.provider); "
        "complexity routing is not enabled",
    )
