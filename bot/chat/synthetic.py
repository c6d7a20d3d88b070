"""The model as a contributor: synthetic assistant replies in growing trees, ranked beside humans'.

Open-Assistant let its models answer prompts so people ranked model replies next to human ones;
those replies carry ``synthetic = true`` and ``model_name`` into every export.
"""

from __future__ import annotations

import contextlib
import logging
import zlib
from typing import Any

from bot.chat.sampling import offset_seed
from bot.labelling.errors import LabellingError
from bot.labelling.service import LabellingService
from storage.enums import Role, TaskKind

log = logging.getLogger(__name__)


def model_discord_id(model_name: str) -> int:
    """A stable id for the model's user row; negative, so it can never clash with a Discord snowflake."""
    return -(zlib.crc32(model_name.encode()) + 1)


class SyntheticReplier:
    def __init__(self, labelling: LabellingService, runner: Any, *, system_prompt: str, params: Any,
                 seed: int | None = None) -> None:
        self.labelling = labelling
        self.runner = runner
        self.system_prompt = system_prompt
        self.params = params
        self.seed = seed

    async def write_one(self) -> int | None:
        """Answer one parent that needs an assistant reply; returns the new message id, or None when
        no tree needs one now (or the engine refused, e.g. its reply rate limit)."""
        model_name = self.runner.model_name
        user = await self.labelling.get_or_create_user(
            model_discord_id(model_name), display_name=model_name, synthetic=True
        )
        try:
            offer = await self.labelling.request_task(user.id, kinds=TaskKind.ASSISTANT_REPLY)
        except LabellingError as nothing:
            log.debug("no synthetic reply now: %s", nothing)
            return None
        messages = [{"role": "system", "content": self.system_prompt}] + [
            {"role": "user" if step.role == Role.PROMPTER else "assistant", "content": step.text}
            for step in offer.conversation
        ]
        # Like chat replies: a configured seed makes runs reproducible, offset so each reply differs.
        params = self.params.with_(seed=offset_seed(self.seed, offer.task_id))
        stream = self.runner.stream_chat(messages, params, user_key="synthetic-replies")
        text = "".join([chunk async for chunk in stream]).strip()
        if not text or stream.result.finish_reason == "cancelled":
            await self.labelling.skip_task(offer.task_id, user.id, "the model wrote nothing")
            return None
        try:
            result = await self.labelling.submit_reply(offer.task_id, user.id, text, model_name=model_name)
        except LabellingError as refused:
            log.info("synthetic reply refused: %s", refused)
            with contextlib.suppress(LabellingError):
                await self.labelling.skip_task(offer.task_id, user.id, "refused")
            return None
        return result.message_id
