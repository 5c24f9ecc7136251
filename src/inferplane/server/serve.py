"""Running one model server process: load the models, serve HTTP, drain on SIGTERM.

uvicorn's own signal handling would stop accepting work and cancel what is left after its
timeout; `DrainingServer` replaces it: the first SIGTERM (or Ctrl-C) flips /ready to 503 and
refuses new API requests with 503, waits for in-flight requests up to the drain deadline, then
lets uvicorn shut down, and the process exits 0. A second Ctrl-C forces the exit.

A generation model's engine core runs in a child process (the engine front's process link):
this process keeps the event loop for HTTP and SSE, and no longer shares its GIL with the step
loop. `engine_in_process` picks the thread link instead (the core on a thread of this
process), for debugging. If the engine core dies, /ready reports it and the server exits 1, so
its supervisor restarts it; the requests in flight get an error at once.
"""

import asyncio
import json
import logging
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Literal, get_args

import uvicorn

from inferplane.engine.compute.embedding import AsyncEmbeddingModel, EmbeddingModel
from inferplane.engine.core.config import DTypeName, EngineConfig, QuantName
from inferplane.engine.core.protocol import EngineClient
from inferplane.engine.front.async_engine import AsyncLLMEngine, LinkKind
from inferplane.http.backpressure import REPLICA_STALL_TIMEOUT_S, StallGuardedProtocol, StreamLimits
from inferplane.http.collector import settle_heap
from inferplane.server.app import create_app
from inferplane.server.state import ServerSettings, ServerState
from inferplane.sources import resolve_source
from inferplane.telemetry.gpu import PynvmlApi
from inferplane.telemetry.logging import configure_logging
from inferplane.telemetry.tracing import setup_tracing

log = logging.getLogger(__name__)
REPLICA_STREAMS = StreamLimits(stall_timeout_s=REPLICA_STALL_TIMEOUT_S)
AnnounceFn = Callable[[ServerState, str], None]
GIL_SWITCH_INTERVAL_S = 0.0005
Task = Literal["generate", "embed", "auto"]
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SERVICE_NAME = "inferplane-replica"
# Encoder-only families: their checkpoints embed, they do not generate.
EMBEDDING_MODEL_TYPES = frozenset(
    {"bert", "roberta", "xlm-roberta", "distilbert", "mpnet", "nomic_bert", "modernbert"}
)


@dataclass(frozen=True)
class ServeOptions:
    """Everything `inferplane serve` takes; defaults live here and the CLI mirrors them."""

    model: str
    served_model_name: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    dtype: DTypeName = "auto"
    max_model_len: int | None = None
    kv_cache_bytes: int = 512 * 1024 * 1024
    max_num_seqs: int = 64
    max_waiting: int = 1024
    stream_interval: int = 1
    quantization: QuantName = "none"
    task: Task = "auto"
    embedding_model: str | None = None
    embedding_model_name: str | None = None
    admin_key: str | None = None
    model_version: str = "unversioned"
    drain_timeout_s: float = 30.0
    max_body_bytes: int = 4 * 1024 * 1024
    device: str = "auto"
    log_level: str = "info"
    log_json: bool = True
    engine_in_process: bool = False  # the engine on a thread of this process, not a child
    streams: StreamLimits = REPLICA_STREAMS  # send buffer, stall cut-off

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        for name, value, choices in (
            ("task", self.task, get_args(Task)),
            ("dtype", self.dtype, get_args(DTypeName)),
            ("quantization", self.quantization, get_args(QuantName)),
        ):
            if value not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        if self.log_level.upper() not in LOG_LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS).lower()}")
        _engine_config(self)  # the engine's own checks (batch sizes, ...), before anything starts


def detect_task(source: str) -> Literal["generate", "embed"]:
    """embed for BERT-family encoders, generate for everything else."""
    config_path = Path(resolve_source(source)) / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    model_type = str(config.get("model_type", "")).lower()
    return "embed" if model_type in EMBEDDING_MODEL_TYPES else "generate"


def build_state(options: ServeOptions) -> tuple[ServerState, "ModelLoader"]:
    task = detect_task(options.model) if options.task == "auto" else options.task
    name = options.served_model_name or options.model
    generation = name if task == "generate" else None
    embedding_source = options.model if task == "embed" else options.embedding_model
    embedding_name = name if task == "embed" else options.embedding_model_name
    if embedding_source is not None and embedding_name is None:
        embedding_name = embedding_source
    settings = ServerSettings(
        model_name=generation,
        embedding_model_name=embedding_name,
        model_version=options.model_version,
        admin_key=options.admin_key,
        max_body_bytes=options.max_body_bytes,
        drain_timeout_s=options.drain_timeout_s,
    )
    engine_config = _engine_config(options) if generation is not None else None
    loader = ModelLoader(
        engine_config, embedding_source, options.device, in_process=options.engine_in_process
    )
    return ServerState(settings), loader


def _engine_config(options: ServeOptions) -> EngineConfig:
    return EngineConfig(
        model=options.model,
        dtype=options.dtype,
        quantization=options.quantization,
        device=options.device,
        max_model_len=options.max_model_len,
        kv_cache_bytes=options.kv_cache_bytes,
        max_num_seqs=options.max_num_seqs,
        max_waiting=options.max_waiting,
        stream_interval=options.stream_interval,
    )


class ModelLoader:
    """Loads the engine and the embedding model after the server starts (so /health answers
    meanwhile), then records how long it took."""

    def __init__(
        self,
        engine: EngineConfig | None,
        embedding: str | None,
        device: str,
        in_process: bool = False,
    ) -> None:
        self.engine = engine
        self.embedding = embedding
        self.device = device
        self.in_process = in_process

    async def __call__(self, state: ServerState) -> None:
        started = time.perf_counter()
        if self.engine is not None:
            state.engine = await _load_engine(
                self.engine, state.settings.model_name, self.in_process
            )
        if self.embedding is not None:
            state.embedder = await _load_embedder(self.embedding, self.device)
        seconds = time.perf_counter() - started
        for name in state.model_names:
            state.metrics.record_load(name, seconds)


async def _load_engine(config: EngineConfig, name: str | None, in_process: bool) -> EngineClient:
    link: LinkKind = "thread" if in_process else "process"
    return await asyncio.to_thread(AsyncLLMEngine.from_config, config, name, link)


def _exit_when_engine_dies(state: ServerState, server: "DrainingServer") -> None:
    """A replica without its engine core can serve nothing: say so on /ready and stop
    (exit code 1), so that whoever supervises the replica starts a new one."""
    engine = state.engine
    if not isinstance(engine, AsyncLLMEngine):
        return

    def died() -> None:  # on the engine link's thread: only flags, which uvicorn polls
        state.load_error = "the engine process exited unexpectedly"
        server.should_exit = True

    engine.on_exit(died)


async def _load_embedder(source: str, device: str) -> AsyncEmbeddingModel:

    model = await asyncio.to_thread(EmbeddingModel.load, resolve_source(source), device)
    return AsyncEmbeddingModel(model)


class DrainingServer(uvicorn.Server):
    """uvicorn with drain-on-signal instead of stop-on-signal."""

    def __init__(self, config: uvicorn.Config, state: ServerState) -> None:
        super().__init__(config)
        self.state = state
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drainer: asyncio.Task[None] | None = None

    async def serve(self, sockets: list | None = None) -> None:  # type: ignore[type-arg]
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not calling super(): uvicorn would re-raise the signal after shutdown, and the
        # process would die by SIGTERM instead of exiting 0 after a clean drain.
        if self.state.drain.draining or self._loop is None:
            self.force_exit = sig == signal.SIGINT
            self.should_exit = True
            return
        self.state.drain.start_draining()
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        self._drainer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        deadline = self.state.settings.drain_timeout_s
        log.info(
            "draining: %d request(s) in flight, deadline %.0fs",
            self.state.drain.in_flight,
            deadline,
        )
        if not await self.state.drain.wait_idle(deadline):
            log.warning("drain deadline passed with %d in flight", self.state.drain.in_flight)
        self.should_exit = True


def run(options: ServeOptions, announce: AnnounceFn | None = None) -> None:
    """Serve until drained; returns normally (exit code 0) after SIGTERM or Ctrl-C. A model
    that fails to load stops the process with exit code 1 (the log says why)."""
    configure_logging(json=options.log_json, level=options.log_level)
    state, loader = build_state(options)
    # Exports nothing (after one log line) where NVML finds no GPU, and then costs nothing.
    state.metrics.watch_gpus(PynvmlApi())
    state.tracing = setup_tracing(SERVICE_NAME)  # off unless INFERPLANE_OTLP_ENDPOINT is set
    try:
        _serve(options, state, loader, announce)
    finally:
        state.tracing.shutdown()
    if state.load_error is not None:
        raise SystemExit(1)


def _serve(
    options: ServeOptions, state: ServerState, loader: "ModelLoader", announce: AnnounceFn | None
) -> None:
    # Another thread shares this event loop's GIL: the engine's step thread (in process) or
    # the reader of the engine process's messages. Python's default 5 ms switch interval makes
    # it queue behind HTTP work; a shorter one keeps steps (or their outputs) flowing.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    holder: list[DrainingServer] = []

    async def load_and_announce(state: ServerState) -> None:
        try:
            await loader(state)
        except Exception:
            holder[0].should_exit = True
            raise  # the app records it as the load error
        _exit_when_engine_dies(state, holder[0])
        # What was loaded lives as long as the process: out of the collector's sight, a full
        # collection no longer walks every module's objects between two tokens of a stream.
        settle_heap()
        for _ in range(200):  # the socket binds right after startup: wait at most 10 s
            if holder[0].started:
                break
            await asyncio.sleep(0.05)
        if announce is not None:
            announce(state, f"http://{options.host}:{options.port}")

    app = create_app(state, load_and_announce)
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        http=StallGuardedProtocol.with_limits(options.streams),  # httptools, stalls cut off
        access_log=False,  # one line per request comes from the app, with its request id
        log_config=None,  # configure_logging above already routes uvicorn's loggers
        log_level=None,
        timeout_graceful_shutdown=5,
        lifespan="on",
    )
    holder.append(DrainingServer(config, state))
    holder[0].run()
