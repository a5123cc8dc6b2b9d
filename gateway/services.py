"""Everything the running gateway owns, started and stopped by the app's lifespan."""

from __future__ import annotations

import time

from gateway.config import Settings
from gateway.db import Database
from gateway.jobs import JobStore
from gateway.procpool import WorkerPool
from gateway.worker import Worker, start_engine

VERSION = "0.1.0"


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database_path)
        self.store = JobStore(self.db)
        self.engines = WorkerPool("engine", settings.worker.process_count,
                                  initializer=start_engine, init_args=(settings,))
        self.inspector = WorkerPool("inspect", 1)
        self.worker = Worker(self.store, self.engines, settings)
        self.started = time.monotonic()

    async def start(self) -> None:
        self.settings.uploads_dir.mkdir(parents=True, exist_ok=True)
        await self.db.open()
        await self.inspector.start()
        await self.engines.start()
        await self.worker.start()

    async def stop(self) -> None:
        self.engines.stop_accepting()
        await self.worker.stop()
        await self.engines.close()
        await self.inspector.close()
        await self.db.close()

    def uptime_s(self) -> float:
        return time.monotonic() - self.started
