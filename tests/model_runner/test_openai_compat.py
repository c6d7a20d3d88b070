"""OpenAICompatRunner against a small aiohttp server that speaks the streaming SSE format."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from aiohttp import web

from model_runner import BackendError, ModelConfigError, OpenAICompatRunner, SamplingParams

REPLY = ["The", " capital", " of", " France", " is", " Paris", "."]


class FakeServer:
    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.disconnected = asyncio.Event()
        self.sent_after_cancel = 0
        self.order: list[str] = []
        self.require_key: str | None = None
        app = web.Application()
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/chat/completions", self.chat)
        self.runner = web.AppRunner(app)

    async def start(self) -> str:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}/v1"

    async def models(self, request: web.Request) -> web.Response:
        if self.require_key and request.headers.get("Authorization") != f"Bearer {self.require_key}":
            return web.json_response({"error": "bad key"}, status=401)
        return web.json_response({"object": "list", "data": [{"id": "fake-model"}]})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.bodies.append(body)
        prompt = body["messages"][-1]["content"]
        self.order.append(prompt)
        if prompt == "fail":
            return web.json_response({"error": {"message": "model exploded"}}, status=500)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        async def send(obj) -> None:
            payload = obj if isinstance(obj, str) else json.dumps(obj)
            await resp.write(f"data: {payload}\n\n".encode())

        try:
            await resp.write(b": keep-alive comment\n\n")
            if prompt == "forever":
                i = 0
                while True:
                    await send({"choices": [{"index": 0, "delta": {"content": f"t{i} "}, "finish_reason": None}]})
                    i += 1
                    await asyncio.sleep(0.01)
            pieces = REPLY[: body.get("max_tokens", 100)]
            for p in pieces:
                await send({"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]})
                await asyncio.sleep(0.005)
            finish = "length" if len(pieces) < len(REPLY) else "stop"
            await send({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
            await send({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": len(pieces),
                                                 "prompt_tokens_details": {"cached_tokens": 5}}})
            await send("[DONE]")
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnected.set()
            raise
        return resp


@pytest.fixture
async def server():
    s = FakeServer()
    url = await s.start()
    s.url = url  # type: ignore[attr-defined]
    yield s
    await s.runner.cleanup()


@pytest.fixture
async def runner(server):
    r = OpenAICompatRunner(server.url, model="fake-model", max_concurrency=1)
    await r.start()
    yield r
    await r.close()


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def test_streams_chunks_and_usage(runner, server):
    params = SamplingParams(temperature=0.3, top_k=40, top_p=0.9, repeat_penalty=1.1, max_tokens=50, seed=5,
                            stop=("###",))
    stream = runner.stream_chat(user("capital?"), params, user_key="u")
    chunks = [c async for c in stream]
    res = stream.result
    assert chunks == REPLY
    assert res.text == "".join(REPLY)
    assert res.finish_reason == "stop"
    assert (res.prompt_tokens, res.completion_tokens, res.prompt_tokens_cached) == (12, len(REPLY), 5)
    body = server.bodies[-1]
    assert body["stream"] is True and body["model"] == "fake-model"
    assert body["messages"] == user("capital?")
    assert (body["temperature"], body["top_p"], body["top_k"], body["max_tokens"], body["seed"]) == (
        0.3, 0.9, 40, 50, 5)
    assert body["repeat_penalty"] == 1.1 and body["stop"] == ["###"]


async def test_length_finish_reason(runner):
    res = await runner.stream_chat(user("short"), SamplingParams(max_tokens=3), user_key="u").final()
    assert res.finish_reason == "length" and res.text == "The capital of"


async def test_cancel_closes_the_connection(runner, server):
    stream = runner.stream_chat(user("forever"), user_key="u")
    n = 0
    async for _ in stream:
        n += 1
        if n == 3:
            stream.cancel()
    assert stream.result.finish_reason == "cancelled"
    await asyncio.wait_for(server.disconnected.wait(), timeout=5)


async def test_http_error_is_a_backend_error(runner):
    with pytest.raises(BackendError, match="HTTP 500"):
        await runner.stream_chat(user("fail"), user_key="u").final()
    # The runner goes on serving.
    assert (await runner.stream_chat(user("ok"), user_key="u").final()).text == "".join(REPLY)


async def test_fair_order_and_positions(runner, server):
    positions: dict[str, list[int]] = {}

    def start(name: str, who: str):
        positions[name] = []
        return runner.stream_chat(user(name), user_key=who, on_position=positions[name].append)

    streams = [start(f"a{i}", "A") for i in range(4)] + [start("b", "B")]
    await asyncio.gather(*(s.final() for s in streams))
    assert server.order == ["a0", "b", "a1", "a2", "a3"]
    assert positions["a3"][0] == 3 and positions["a3"][-1] == 0


async def test_unreachable_server_fails_at_start():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = OpenAICompatRunner(f"http://127.0.0.1:{port}/v1", model="m")
    with pytest.raises(ModelConfigError, match="Cannot reach"):
        await r.start()


async def test_wrong_api_key_fails_at_start(server):
    server.require_key = "secret"
    with pytest.raises(ModelConfigError, match="refused the API key"):
        await OpenAICompatRunner(server.url, model="m", api_key="wrong").start()
    ok = OpenAICompatRunner(server.url, model="m", api_key="secret")
    await ok.start()
    await ok.close()


async def test_count_tokens_is_an_estimate(runner):
    assert runner.count_tokens_is_exact is False
    assert await runner.count_tokens("abcdefgh") == 2
    assert await runner.count_tokens(user("abcdefgh")) > 2


async def test_async_position_callback_is_awaited(runner):
    seen: list[int] = []

    async def on_position(p: int) -> None:
        await asyncio.sleep(0)
        seen.append(p)

    blocker = runner.stream_chat(user("forever"), user_key="a")
    waiting = runner.stream_chat(user("hi"), user_key="b", on_position=on_position)
    await asyncio.sleep(0.05)
    blocker.cancel()
    await waiting.final()
    await blocker.final()
    await asyncio.sleep(0.01)
    assert seen[0] == 1 and seen[-1] == 0
