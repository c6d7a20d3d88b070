"""Per-route rate limit buckets with Discord's headers, 429 bodies and `Retry-After`."""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import Any

EDIT_ROUTES = (
    "PATCH /channels/{channel_id}/messages/{message_id}",
    "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/@original",
    "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
)


@dataclass
class Rule:
    """`limit` requests per `window` seconds for each scope key (channel, guild, webhook, or whole route)."""

    name: str
    limit: int
    window: float
    routes: tuple[str, ...] = ()

    @property
    def bucket_hash(self) -> str:
        return hashlib.sha1(self.name.encode()).hexdigest()[:32]


@dataclass
class _Bucket:
    remaining: int
    reset_at: float
    blocked_until: float = 0.0


@dataclass
class Decision:
    allowed: bool
    headers: dict[str, str]
    retry_after: float = 0.0
    early: bool = False


@dataclass
class RateLimiter:
    """Fixed windows per (rule, scope): a window opens on its first request, like Discord's buckets.

    The edit rule keys on the channel of the edited message, so channel and interaction-webhook edits of
    one channel share it (a stream edited from a slash command is limited like one edited directly).
    """

    default_limit: int = 50
    default_window: float = 1.0
    enabled: bool = True
    rules: dict[str, Rule] = field(default_factory=dict)
    _buckets: dict[tuple[str, str], _Bucket] = field(default_factory=dict)
    clock: Any = time.monotonic

    def __post_init__(self) -> None:
        if "message_edit" not in self.rules:
            self.rules["message_edit"] = Rule("message_edit", 5, 5.0, EDIT_ROUTES)

    def configure(self, route_or_rule: str, limit: int, window: float) -> Rule:
        """Set a limit by rule name (`message_edit`) or by route key (`"POST /channels/{channel_id}/messages"`)."""
        existing = self.rules.get(route_or_rule)
        if existing is not None:
            existing.limit, existing.window = limit, window
            rule = existing
        else:
            rule = Rule(route_or_rule, limit, window, (route_or_rule,))
            self.rules[route_or_rule] = rule
        self._buckets = {k: v for k, v in self._buckets.items() if k[0] != rule.name}
        return rule

    def set_edit_limit(self, limit: int, window: float) -> None:
        self.configure("message_edit", limit, window)

    def reset(self) -> None:
        self._buckets.clear()

    def rule_for(self, route_key: str) -> Rule:
        for rule in self.rules.values():
            if route_key in rule.routes:
                return rule
        return Rule(route_key, self.default_limit, self.default_window, (route_key,))

    def _headers(self, rule: Rule, bucket: _Bucket, now: float) -> dict[str, str]:
        reset_after = ceil_ms(max(0.0, bucket.reset_at - now))
        return {
            "X-RateLimit-Limit": str(rule.limit),
            "X-RateLimit-Remaining": str(max(0, bucket.remaining)),
            "X-RateLimit-Reset": f"{ceil_ms(time.time() + reset_after):.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": rule.bucket_hash,
        }

    def hit(self, route_key: str, scope: str) -> Decision:
        rule = self.rule_for(route_key)
        now = self.clock()
        key = (rule.name, scope)
        bucket = self._buckets.get(key)
        if bucket is None or now >= bucket.reset_at:
            blocked = bucket.blocked_until if bucket else 0.0
            bucket = _Bucket(remaining=rule.limit, reset_at=now + rule.window, blocked_until=blocked)
            self._buckets[key] = bucket
        early = now < bucket.blocked_until
        if early or (self.enabled and bucket.remaining <= 0):
            retry_after = max(bucket.reset_at, bucket.blocked_until) - now
            headers = self._headers(rule, bucket, now)
            headers["X-RateLimit-Remaining"] = "0"
            headers["X-RateLimit-Reset-After"] = f"{ceil_ms(retry_after):.3f}"
            return Decision(False, headers, retry_after, early=early)
        if self.enabled:
            bucket.remaining -= 1
        return Decision(True, self._headers(rule, bucket, now))

    def block(self, route_key: str, scope: str, seconds: float) -> dict[str, str]:
        """An injected 429: the bucket stays closed for `seconds`, and a retry before that is a violation."""
        rule = self.rule_for(route_key)
        now = self.clock()
        key = (rule.name, scope)
        bucket = self._buckets.get(key) or _Bucket(remaining=rule.limit, reset_at=now + rule.window)
        bucket.blocked_until = now + seconds
        self._buckets[key] = bucket
        headers = self._headers(rule, bucket, now)
        headers["X-RateLimit-Remaining"] = "0"
        headers["X-RateLimit-Reset-After"] = f"{ceil_ms(seconds):.3f}"
        return headers


def ceil_ms(seconds: float) -> float:
    """Round up to the millisecond: a client waiting the advertised time must never come back early."""
    return math.ceil(seconds * 1000) / 1000


def too_many_requests_body(retry_after: float, *, is_global: bool = False) -> dict[str, Any]:
    return {"message": "You are being rate limited.", "retry_after": ceil_ms(retry_after), "global": is_global,
            "code": 0}
