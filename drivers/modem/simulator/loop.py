"""The background thread and event loop hosting every simulated modem, with one 20 ms PCM
clock for all of them and a fault ticker."""

from __future__ import annotations

import asyncio
import concurrent.futures
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from drivers.modem.simulator.dialects import DIALECTS
from drivers.modem.simulator.host import FRAME_SECONDS, HostedModem
from drivers.modem.simulator.state import SimulatorConfig

T = TypeVar("T")


class SimulatorLoop:
    """The background thread and event loop hosting every simulated modem."""

    def __init__(self, config: SimulatorConfig) -> None:
        config.validate()
        self.config = config
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if config.directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="callmesh-modemsim-")
        self.directory = Path(config.directory or (self._tmp.name if self._tmp else "."))
        self.by_id = self.directory / "by-id"
        self.modems: list[HostedModem] = []
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="modem-simulator", daemon=True)
        self._started = threading.Event()
        self._failure: BaseException | None = None

    def start(self, timeout: float = 10.0) -> None:
        """Create the ptys and start answering; returns once every modem is plugged in."""
        self.by_id.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError("simulator did not start")
        if self._failure is not None:
            raise RuntimeError(f"simulator failed to start: {self._failure}")

    def stop(self, timeout: float = 10.0) -> None:
        """Unplug everything, stop the loop and join the thread (bounded)."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._shutdown)
            self._thread.join(timeout)
        if self._tmp is not None:
            self._tmp.cleanup()

    def call(self, fn: Callable[[], T], timeout: float = 5.0) -> T:
        """Run ``fn`` on the simulator loop and return its result (any other thread)."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except Exception as err:  # noqa: BLE001 - handed back to the caller's thread
                future.set_exception(err)

        self.loop.call_soon_threadsafe(run)
        return future.result(timeout)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            for index in range(self.config.count):
                dialect = DIALECTS[self.config.profile]
                hosted = HostedModem(index, dialect, self.config, self.by_id, self.loop)
                self.modems.append(hosted)
            self._clock = self.loop.create_task(self._pcm_clock())
            self._ticker = self.loop.create_task(self._fault_ticker())
        except Exception as err:  # noqa: BLE001 - reported to start()
            self._failure = err
            self._started.set()
            return
        self._started.set()
        self.loop.run_forever()
        pending = asyncio.gather(self._clock, self._ticker, return_exceptions=True)
        self.loop.run_until_complete(pending)
        self.loop.close()

    def _shutdown(self) -> None:
        self._clock.cancel()
        self._ticker.cancel()
        for hosted in self.modems:
            hosted.close()
        self.loop.stop()

    async def _pcm_clock(self) -> None:
        deadline = self.loop.time()
        while True:
            for hosted in self.modems:
                hosted.pcm_tick()
            deadline += FRAME_SECONDS
            delay = deadline - self.loop.time()
            if delay < -FRAME_SECONDS:
                deadline = self.loop.time()
            await asyncio.sleep(max(delay, 0.0))

    async def _fault_ticker(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            for hosted in self.modems:
                hosted.modem.tick()
