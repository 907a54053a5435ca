"""generateContent in the API process, on one dedicated thread, off the event loop.

One thread owns the engine's Generator (and so the loaded models), so requests queue there
while list/get calls keep being answered by the event loop.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from include.local_vertex.config import ServiceConfig
from include.local_vertex.errors import invalid_argument

# Returns (the local base model, the adapter folder or None); may be slow the first time
# (the bundled model is converted once), so it runs on the generation thread too.
ModelResolver = Callable[[], tuple[str, Path | None]]


class GenerationService:
    def __init__(self, config: ServiceConfig):
        self.config = config
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-vertex-generate")
        self._generator = None  # created on the generation thread at first use

    async def generate(self, resolve_model: ModelResolver, request: dict) -> dict:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._generate, resolve_model, request)

    def _generate(self, resolve_model: ModelResolver, request: dict) -> dict:
        if self._generator is None:
            self.config.apply_torch_threads()
            from include.tuning_engine.generation import Generator

            self._generator = Generator()
        base_model, adapter_dir = resolve_model()
        try:
            return self._generator.generate(base_model, adapter_dir, request)
        except ValueError as exc:
            raise invalid_argument(str(exc)) from exc

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
