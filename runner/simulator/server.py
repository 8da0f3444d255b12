"""Start and stop a simulator: the API listener and the CDN listener, on loopback ports.

`start_simulator` is an async context manager; port 0 (the default) picks free ports, so
tests can run many simulators side by side. Files (uploads, encoded videos) live in a
temporary folder removed on exit unless `work_dir` is given.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from aiohttp import web

from runner.simulator import persist
from runner.simulator.api import build_api_app
from runner.simulator.catalog import Catalog
from runner.simulator.cdn import build_cdn_app
from runner.simulator.config import SimulatorConfig, check_fault_rates
from runner.simulator.context import SimContext
from runner.simulator.state import SimState
from runner.simulator.stats import SimulatorStats


class Simulator:
    """A running simulator: where to reach it, its live accounting and its fault knobs."""

    def __init__(self, context: SimContext, base_url: str, cdn_url: str) -> None:
        self._context = context
        self.base_url = base_url
        self.cdn_url = cdn_url
        self.config = context.config

    @property
    def stats(self) -> SimulatorStats:
        """Live accounting (see `SimulatorStats`)."""
        return self._context.stats

    @property
    def fault_rates(self) -> dict[str, float]:
        """The fault rates in force now."""
        return dict(self._context.rates)

    def set_faults(self, profile: str | None = None, **rates: float) -> None:
        """Change fault rates at run time: start from `profile` if given, then apply `rates`.

        Raises ValueError for an unknown fault or profile, or a rate outside 0..1.
        """
        check_fault_rates(rates)
        if profile is not None:
            base = SimulatorConfig(profile=profile, seed=self.config.seed)
            self._context.rates.clear()
            self._context.rates.update(base.fault_rates())
        self._context.rates.update(rates)

    def credentials_env(self) -> dict[str, str]:
        """Environment variables that point the SDK (and kling-batch) at this simulator."""
        config = self.config
        env = {"SCENARIO_BASE_URL": self.base_url}
        if config.bearer is not None and config.api_key is None:
            env["SCENARIO_SDK_JWT"] = config.bearer
        else:
            env["SCENARIO_SDK_API_KEY"] = config.api_key or "sim-key"
            env["SCENARIO_SDK_API_SECRET"] = config.api_secret or "sim-secret"
        return env


async def _serve(stack: AsyncExitStack, app: web.Application, host: str, port: int) -> int:
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, host, port)
    await site.start()
    server: Any = site._server  # aiohttp exposes the bound port only through the server
    return int(server.sockets[0].getsockname()[1])


def _context(config: SimulatorConfig, work_dir: Path, clock: Callable[[], float]) -> SimContext:
    state = SimState(config.seed)
    epoch = clock()
    return SimContext(
        config=config,
        state=state,
        stats=SimulatorStats(state, clock, epoch),
        clock=clock,
        catalog=Catalog(config.resolved_schema_dir()),
        work_dir=work_dir,
        rates=config.fault_rates(),
        epoch_unix=time.time(),
        epoch_mono=epoch,
    )


async def _keep_state(stack: AsyncExitStack, context: SimContext, path: Path) -> None:
    """Load the saved state, save it while the simulator runs and when it stops."""
    saved = persist.read(path)
    if saved is not None:
        persist.load(context, saved)
    stack.callback(persist.save, context, path)  # last: after the listeners have stopped
    group = await stack.enter_async_context(anyio.create_task_group())
    stack.callback(group.cancel_scope.cancel)
    group.start_soon(persist.keep_saved, context, path)


@asynccontextmanager
async def start_simulator(
    config: SimulatorConfig | None = None, *, clock: Callable[[], float] = time.monotonic
) -> AsyncIterator[Simulator]:
    """Serve a simulator until the block exits; `clock` (monotonic seconds) drives job time."""
    config = config or SimulatorConfig()
    async with AsyncExitStack() as stack:
        work_dir = config.work_dir
        if work_dir is None and config.state_file is not None:
            work_dir = config.state_file.parent / "files"
        if work_dir is None:
            work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kling-sim-")))
        else:
            work_dir.mkdir(parents=True, exist_ok=True)
        context = _context(config, work_dir, clock)
        if config.state_file is not None:
            await _keep_state(stack, context, config.state_file)
        cdn_port = await _serve(stack, build_cdn_app(context), config.host, config.cdn_port)
        context.cdn_url = f"http://{config.host}:{cdn_port}"
        api_port = await _serve(stack, build_api_app(context), config.host, config.port)
        yield Simulator(context, f"http://{config.host}:{api_port}/v1", context.cdn_url)
