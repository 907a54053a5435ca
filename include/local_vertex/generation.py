"""generateContent in the API process, on one dedicated thread, off the event loop.

One thread owns the engine's Generator (and so the loaded models), so requests queue there
while list/get calls keep being answered by the event loop. The routes use four calls:
generate, stream, count_tokens and compute_tokens.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import AsyncIterator, Callable

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
        return await self._run(lambda g, base, adapter: g.generate(base, adapter, request), resolve_model)

    async def stream(self, resolve_model: ModelResolver, request: dict) -> AsyncIterator[str | dict]:
        """The answer's text in pieces as it settles (str), then the whole answer (a dict)."""
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue = asyncio.Queue()
        sent = 0

        def on_text(settled: str) -> None:
            loop.call_soon_threadsafe(pieces.put_nowait, settled)

        answer = asyncio.ensure_future(self._run(
            lambda g, base, adapter: g.generate(base, adapter, request, on_text=on_text), resolve_model))
        answer.add_done_callback(lambda _: loop.call_soon_threadsafe(pieces.put_nowait, None))
        while (settled := await pieces.get()) is not None:
            if len(settled) > sent:
                yield settled[sent:]
                sent = len(settled)
        whole = await answer
        text = whole["candidates"][0]["content"]["parts"][0]["text"]
        if len(text) > sent:
            yield text[sent:]
        yield whole

    async def count_tokens(self, resolve_model: ModelResolver, request: dict) -> int:
        return await self._run(lambda g, base, _: g.count_tokens(base, request), resolve_model)

    async def compute_tokens(self, resolve_model: ModelResolver, request: dict) -> list[dict]:
        return await self._run(lambda g, base, _: g.compute_tokens(base, request), resolve_model)

    async def _run(self, call, resolve_model: ModelResolver):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, call, resolve_model)

    def _call(self, call, resolve_model: ModelResolver):
        if self._generator is None:
            self.config.apply_torch_threads()
            from include.tuning_engine.generation import Generator

            self._generator = Generator()
        base_model, adapter_dir = resolve_model()
        try:
            return call(self._generator, base_model, adapter_dir)
        except ValueError as exc:
            raise invalid_argument(str(exc)) from exc

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
