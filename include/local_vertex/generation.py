"""The model calls in a process of its own, with the generateContent requests that wait batched.

The API process never loads a model: it resolves which model a request needs, hands the request
to the generation process (JSON lines on its stdin and stdout) and awaits the answer (or, for a
streamed one, its text as it settles). The routes use four calls: generate, stream,
count_tokens and compute_tokens. That process decodes every request it has in one forward pass
per token, and a request that arrives joins them at the next token (continuous batching, see
tuning_engine/decoding.py), so concurrent requests cost little more than one. A crash or an
out-of-memory kill there fails the requests in flight with a clear error and nothing else: the
API and the trainings carry on, and the next request starts a fresh process.

Limits: at most `generation_max_queue` requests wait or run at once (more get 429
RESOURCE_EXHAUSTED), and each gets `generation_timeout_s` (then 504 DEADLINE_EXCEEDED, Google's
shape, and the process stops decoding it).

Run as a module, this file is the generation process: `python -m include.local_vertex.generation`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import logging
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import AsyncIterator, Callable

import orjson

from include.local_vertex.config import ServiceConfig, config_from_worker_settings, worker_settings
from include.local_vertex.errors import ApiError
from include.local_vertex.processes import describe_exit, die_with_parent, spawn_module, stop_process

log = logging.getLogger(__name__)
# Returns (the local base model, the adapter folder or None); may be slow the first time
# (the bundled model is converted once), so it runs off the event loop.
ModelResolver = Callable[[], tuple[str, Path | None]]


class GenerationService:
    """The API side: one generation process, started at first use and after a crash."""

    def __init__(self, config: ServiceConfig):
        self.config = config
        self._lock = threading.Lock()  # guards the process, its pipe and the pending table
        self._proc: subprocess.Popen | None = None
        self._pending: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Queue, subprocess.Popen]] = {}
        self._ids = itertools.count(1)
        self._admitted = 0  # requests between admission and answer
        self._closed = False

    async def generate(self, resolve_model: ModelResolver, request: dict) -> dict:
        return await self._call("generate", resolve_model, request)

    async def stream(self, resolve_model: ModelResolver, request: dict) -> AsyncIterator[str | dict]:
        """The answer's text in pieces as it settles (str), then the whole answer (a dict)."""
        sent = 0
        async for kind, payload in self._exchange("stream", resolve_model, request):
            if kind == "text":
                if len(payload) > sent:
                    yield payload[sent:]
                    sent = len(payload)
                continue
            text = payload["candidates"][0]["content"]["parts"][0]["text"]
            if len(text) > sent:
                yield text[sent:]
            yield payload

    async def count_tokens(self, resolve_model: ModelResolver, request: dict) -> int:
        return await self._call("count_tokens", resolve_model, request)

    async def compute_tokens(self, resolve_model: ModelResolver, request: dict) -> list[dict]:
        infos = await self._call("compute_tokens", resolve_model, request)
        return [{**info, "tokens": [base64.b64decode(token) for token in info["tokens"]]} for info in infos]

    async def _call(self, op: str, resolve_model: ModelResolver, request: dict):
        """The answer of a call that is not streamed (read to the end, so the call's clean-up runs now)."""
        answer = None
        async for kind, payload in self._exchange(op, resolve_model, request):
            if kind == "done":
                answer = payload
        return answer

    async def _exchange(self, op: str, resolve_model: ModelResolver, request: dict):
        """Sends one call to the generation process; yields ("text", settled text) while a
        streamed answer decodes, then ("done", answer). Raises the call's ApiError."""
        if self._admitted >= self.config.generation_max_queue:  # the event loop's thread only: no lock
            raise ApiError(429, "RESOURCE_EXHAUSTED",
                           f"{self._admitted} model calls are already waiting or running "
                           f"(the limit is {self.config.generation_max_queue}); retry later")
        self._admitted += 1
        loop = asyncio.get_running_loop()
        request_id = next(self._ids)
        done = False
        try:
            base_model, adapter_dir = await loop.run_in_executor(None, resolve_model)
            inbox: asyncio.Queue = asyncio.Queue()
            self._send(request_id, {"id": request_id, "op": op, "baseModel": base_model, "request": request,
                                    "adapterDir": str(adapter_dir) if adapter_dir else None}, loop, inbox)
            deadline = loop.time() + self.config.generation_timeout_s
            while not done:
                try:
                    kind, payload = await asyncio.wait_for(inbox.get(), timeout=max(0.0, deadline - loop.time()))
                except asyncio.TimeoutError:
                    raise ApiError(504, "DEADLINE_EXCEEDED",
                                   f"the model call did not finish within {self.config.generation_timeout_s:g} s; "
                                   "ask for fewer maxOutputTokens or retry later") from None
                if kind == "error":
                    done = True
                    raise payload
                done = kind == "done"
                yield kind, payload
        finally:
            self._admitted -= 1
            if not done:  # timed out, or the client went away: stop decoding it
                self._cancel(request_id)
            with self._lock:
                self._pending.pop(request_id, None)

    @property
    def pid(self) -> int | None:
        """The generation process, when one runs (for tests and the logs)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def _send(self, request_id: int, message: dict, loop, inbox: asyncio.Queue) -> None:
        with self._lock:
            if self._closed:
                raise ApiError(503, "UNAVAILABLE", "the service is shutting down")
            proc = self._running_process()
            self._pending[request_id] = (loop, inbox, proc)
            try:
                proc.stdin.write(orjson.dumps(message) + b"\n")
                proc.stdin.flush()
            except OSError:
                pass  # it died: its reader thread fails this request with the reason

    def _cancel(self, request_id: int) -> None:
        with self._lock:
            entry = self._pending.get(request_id)
            if entry is not None and entry[2].poll() is None:
                try:
                    entry[2].stdin.write(orjson.dumps({"cancel": request_id}) + b"\n")
                    entry[2].stdin.flush()
                except OSError:
                    pass

    def _running_process(self) -> subprocess.Popen:
        # Started from the event loop's thread, which lives as long as the service: the child's
        # parent-death signal fires when the thread that started it ends.
        if self._proc is None or self._proc.poll() is not None:
            self._proc = spawn_module(
                "include.local_vertex.generation", "--settings", json.dumps(worker_settings(self.config)),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            )
            threading.Thread(target=self._read_answers, args=(self._proc,), name="local-vertex-generation-reader",
                             daemon=True).start()
            log.info("generation process %d started (%d torch threads)", self._proc.pid,
                     self.config.generator_threads())
        return self._proc

    def _read_answers(self, proc: subprocess.Popen) -> None:
        """Hands each answer to its caller; when the process ends, fails the calls it had."""
        for line in proc.stdout:
            answer = orjson.loads(line)
            with self._lock:
                entry = self._pending.get(answer["id"])
            if entry is None:
                continue  # timed out meanwhile
            if "text" in answer:
                _deliver(entry, "text", answer["text"])
            elif "response" in answer:
                _deliver(entry, "done", answer["response"])
            else:
                error = answer["error"]
                _deliver(entry, "error", ApiError(error["code"], error["status"], error["message"]))
        status = proc.wait()
        if not self._closed:
            log.error("generation process %d %s", proc.pid, describe_exit(status))
        reason = ApiError(503, "UNAVAILABLE",
                          f"the generation process {describe_exit(status)} before answering (out of memory?); "
                          "the service and its tuning jobs are unaffected and the next request starts it "
                          "again: retry")
        with self._lock:
            lost = [entry for entry in self._pending.values() if entry[2] is proc]
        for entry in lost:
            _deliver(entry, "error", reason)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            proc, self._proc = self._proc, None
        if proc is not None:
            proc.stdin.close()  # the process ends at the end of its input
            stop_process(proc, grace_s=5.0)


def _deliver(entry, kind: str, payload) -> None:
    loop, inbox, _ = entry
    try:
        loop.call_soon_threadsafe(inbox.put_nowait, (kind, payload))
    except RuntimeError:  # the event loop is gone (shutdown)
        pass


# -- the generation process -------------------------------------------------------------------


def _serve_generation() -> None:
    parser = argparse.ArgumentParser(description="the local Vertex service's generation process")
    parser.add_argument("--settings", required=True, help="JSON from config.worker_settings")
    parser.add_argument("--parent-pid", type=int, required=True)
    args = parser.parse_args()
    die_with_parent(args.parent_pid)
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print must not corrupt the answers
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s generation: %(message)s")
    config = config_from_worker_settings(json.loads(args.settings))
    os.environ["TUNING_ENGINE_THREADS"] = str(config.generator_threads())
    os.environ["TUNING_ENGINE_MAX_THREADS"] = str(config.generator_max_threads())

    inbox: queue.Queue = queue.Queue()
    cancelled: set[int] = set()

    def read_requests():
        for line in sys.stdin.buffer:
            message = orjson.loads(line)
            if "cancel" in message:
                cancelled.add(message["cancel"])
            else:
                inbox.put(message)
        inbox.put(None)

    threading.Thread(target=read_requests, name="requests", daemon=True).start()
    from include.tuning_engine.generation import Generator

    generator = Generator()

    def send(answer: dict) -> None:
        answers.write(orjson.dumps(answer) + b"\n")
        answers.flush()

    ending = False
    while not (ending and not generator.decoding):
        messages, ending = _waiting(inbox, block=not generator.decoding and not ending, ending=ending)
        for message in messages:
            if message["id"] in cancelled:
                continue
            if message["op"] in ("count_tokens", "compute_tokens"):  # no model needed: answered at once
                send(_answer(message["id"], _token_call(generator, message)))
                continue
            on_text = ((lambda text, request_id=message["id"]: send({"id": request_id, "text": text}))
                       if message["op"] == "stream" else None)
            try:
                generator.start(message["id"], message["baseModel"],
                                Path(message["adapterDir"]) if message["adapterDir"] else None,
                                message["request"], on_text)
            except Exception as exc:  # noqa: BLE001 - each request must get an answer
                send(_answer(message["id"], exc))
        for request_id, result in generator.step(lambda request_id: request_id in cancelled):
            send(_answer(request_id, result))


def _token_call(generator, message: dict):
    """countTokens or computeTokens (token bytes in base64, as JSON carries them); or the error."""
    try:
        if message["op"] == "count_tokens":
            return generator.count_tokens(message["baseModel"], message["request"])
        infos = generator.compute_tokens(message["baseModel"], message["request"])
        return [{**info, "tokens": [base64.b64encode(token).decode() for token in info["tokens"]]} for info in infos]
    except Exception as exc:  # noqa: BLE001 - each request must get an answer
        return exc


def _waiting(inbox: queue.Queue, block: bool, ending: bool) -> tuple[list[dict], bool]:
    """The messages waiting now (waiting for one when `block`), and whether the input has ended."""
    messages = []
    while True:
        try:
            message = inbox.get(block=block and not messages)
        except queue.Empty:
            return messages, ending
        if message is None:
            return messages, True
        messages.append(message)


def _answer(request_id: int, result: dict | Exception) -> dict:
    """The line that answers a call: its result, or Google's error shape for its exception."""
    if not isinstance(result, Exception):
        return {"id": request_id, "response": result}
    if isinstance(result, ValueError):
        code, status = 400, "INVALID_ARGUMENT"
    elif isinstance(result, FileNotFoundError):
        code, status = 404, "NOT_FOUND"
    else:
        code, status = 500, "INTERNAL"
    message = str(result) if code != 500 else f"generation failed: {type(result).__name__}"
    return {"id": request_id, "error": {"code": code, "status": status, "message": message}}


if __name__ == "__main__":
    _serve_generation()
