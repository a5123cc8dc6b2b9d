"""One real gateway for the tests of outgoing HTTP (issue 16: documents by URL, webhooks, the
read-results API), started once per session: it may fetch from and call `localhost` (allowed by
name, so `127.0.0.1` stays refused), gives up a fetch after 3 s and 2 redirects, and retries
webhooks quickly (0.5 s doubling, given up 4 s after the job finished)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.gateway_process import GatewayProcess, write_config

ADMIN_TOKEN = "outbound-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Outbound:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = write_config(
            root / "config.yaml",
            root / "data",
            pipeline={"provider": "tesseract"},
            worker={"processes": 1},
            fetch={"allow_hosts": ["localhost"], "timeout_s": 3, "max_redirects": 2},
            webhooks={
                "first_retry_s": 0.5,
                "max_retry_interval_s": 5,
                "retry_for_s": 4,
                "poll_interval_s": 0.2,
                "timeout_s": 5,
            },
        )
        self.started: list[GatewayProcess] = []
        self._start()

    def _start(self) -> None:
        log = self.root / f"gateway-{len(self.started)}.log"
        env = {"OCR_GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN}
        self.started.append(GatewayProcess(self.config, log, env=env).start())

    @property
    def current(self) -> GatewayProcess:
        return self.started[-1]

    def kill_and_restart(self) -> GatewayProcess:
        """SIGKILL the gateway (and its workers), then start the next one on the same data."""
        self.current.kill()
        self._start()
        return self.current

    def stop(self) -> None:
        for gateway in self.started:
            gateway.stop()

    def new_tenant(self, plan: str = "business", credits: int = 500) -> tuple[str, str]:
        """(tenant id, API key) through the admin API."""
        made = httpx.post(
            f"{self.current.url}/admin/tenants",
            headers=ADMIN,
            json={"name": "outbound", "plan": plan, "credits": credits},
        )
        assert made.status_code == 201, made.text
        return made.json()["tenant"]["id"], made.json()["api_key"]

    def secret(self, tenant_id: str, rotate: bool = False) -> str:
        """The tenant's webhook secret (a new one with `rotate`)."""
        path = f"{self.current.url}/admin/tenants/{tenant_id}/webhook-secret"
        response = httpx.post(path, headers=ADMIN) if rotate else httpx.get(path, headers=ADMIN)
        assert response.status_code == (201 if rotate else 200), response.text
        secret: str = response.json()["secret"]
        assert secret.startswith("whsec_")
        return secret
