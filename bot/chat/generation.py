"""One reply being written: the model's text as it grows, then its outcome, stored.

The rules of a reply live here, not in the cog: a reply that ends empty failed, one that runs past
``reply_timeout_seconds`` is stopped, a reply suspended for a shutdown stays ``generating`` so the
next start finishes it, and every outcome (with its token counts) is stored before the caller
shows buttons, so a click can never find the reply unfinished.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from model_runner import ChatResult, ModelRunnerError, PromptTooLongError, SamplingParams
from storage.enums import ChatMessageState

if TYPE_CHECKING:
    from bot.chat.service import ChatService, ChatTurn, ShownReply

log = logging.getLogger(__name__)

PositionCallback = Callable[[int], Any]
# Why a reply did not complete: too slow, the backend failed, the model wrote nothing, the
# conversation outgrew the model's context, or the bot is stopping (finished after the restart).
Problem = Literal["timeout", "failed", "empty", "too_long", "suspended"]


@dataclass(frozen=True)
class ReplyOutcome:
    state: str
    text: str
    problem: Problem | None = None

    @property
    def complete(self) -> bool:
        return self.state == ChatMessageState.COMPLETE

    @property
    def suspended(self) -> bool:
        return self.problem == "suspended"


class ReplyGeneration:
    """``async for text in generation`` yields the reply so far; then ``outcome`` tells how it ended.

    ``suspend()`` stops it for a shutdown; ``close()`` after leaving the loop early (the caller
    failed) records it as failed."""

    def __init__(self, service: ChatService, turn: ChatTurn, params: SamplingParams, *,
                 stale: list[ShownReply], on_position: PositionCallback | None = None) -> None:
        self.service = service
        self.turn = turn
        self.params = params
        # Replies of the previous turn whose Regenerate / Keep buttons this turn makes stale.
        self.stale = stale
        self.outcome: ReplyOutcome | None = None
        self._on_position = on_position
        self._stream: Any = None
        self._stopped_because: Problem | None = None
        self._iterator: AsyncIterator[str] | None = None

    def __aiter__(self) -> AsyncIterator[str]:
        if self._iterator is None:
            self._iterator = self._run()
        return self._iterator

    def suspend(self) -> None:
        """Stop now and leave the reply to be finished after the restart."""
        self._stop("suspended")

    async def close(self) -> None:
        if self._iterator is not None:
            await self._iterator.aclose()  # type: ignore[attr-defined]
        if self.outcome is None:
            self._stop("failed")
            await self._record(ReplyOutcome(ChatMessageState.FAILED, "", "failed"), None)

    def _stop(self, why: Problem) -> None:
        if self._stopped_because is None:
            self._stopped_because = why
        if self._stream is not None:
            self._stream.cancel()

    async def _run(self) -> AsyncIterator[str]:
        turn, settings = self.turn, self.service.settings
        text = ""
        result: ChatResult | None = None
        problem: Problem | None = None
        if self._stopped_because is not None:  # suspended before it started
            await self._record(ReplyOutcome(ChatMessageState.GENERATING, "", self._stopped_because), None)
            return
        timer = asyncio.get_running_loop().call_later(settings.reply_timeout_seconds, self._stop, "timeout")
        try:
            self._stream = self.service.runner.stream_chat(
                turn.messages, self.params, user_key=turn.owner_key, conversation_key=turn.conversation_key,
                on_position=self._on_position,
            )
            async for chunk in self._stream:
                text += chunk
                yield text
            result = self._stream.result
        except PromptTooLongError:
            problem = "too_long"
        except ModelRunnerError as error:
            log.warning("chat reply %s failed: %s", turn.reply_id, error)
            problem = "failed"
        except Exception:
            log.exception("chat reply %s failed", turn.reply_id)
            problem = "failed"
        finally:
            timer.cancel()
            if self.outcome is None and result is None and problem is None:
                # The caller left the loop (GeneratorExit): nothing more will be shown.
                self._stop("failed")
        problem = self._stopped_because or problem
        if problem is None and not text.strip():
            problem = "empty"
        state = {
            None: ChatMessageState.COMPLETE,
            "timeout": ChatMessageState.CANCELLED,
            "suspended": ChatMessageState.GENERATING,
        }.get(problem, ChatMessageState.FAILED)
        if problem == "timeout":
            log.warning("chat reply %s timed out", turn.reply_id)
        await self._record(ReplyOutcome(state, text, problem), result)

    async def _record(self, outcome: ReplyOutcome, result: ChatResult | None) -> None:
        await self.service.finish_reply(
            self.turn.reply_id,
            outcome.text,
            state=outcome.state,
            prompt_tokens=result.prompt_tokens if result else None,
            completion_tokens=result.completion_tokens if result else None,
            generation_ms=int(result.total_s * 1000) if result else None,
        )
        self.outcome = outcome
