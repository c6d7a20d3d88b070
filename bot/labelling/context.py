"""What every service call needs besides the session: the rules, a random source and the time."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bot.config import LabellingSettings


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    """``rng`` and ``clock`` are injectable so the simulator and tests are reproducible."""

    settings: LabellingSettings = field(default_factory=LabellingSettings)
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], datetime] = _utcnow

    def now(self) -> datetime:
        return self.clock()
