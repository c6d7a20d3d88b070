"""llama-cpp-python's own OpenAI-compatible server in a subprocess, for tests."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """``python -m llama_cpp.server`` in a subprocess; start() waits until /v1/models answers."""

    def __init__(self, model: Path, port: int) -> None:
        self.model = model
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "llama_cpp.server", "--model", str(self.model), "--host", "127.0.0.1",
            "--port", str(self.port), "--n_threads", "1", "--n_ctx", "2048",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        async with aiohttp.ClientSession() as session:
            for _ in range(600):
                if self.process.returncode is not None:
                    raise RuntimeError(f"llama_cpp.server exited with {self.process.returncode}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{self.base_url}/models") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise RuntimeError("llama_cpp.server did not come up within a minute")

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)  # gone mid-reply, as when the machine dies
            await self.process.wait()
        self.process = None
