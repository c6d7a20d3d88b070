"""Fault injection: chosen REST routes answer 5xx or 429 or are slowed down; gateway faults live in gateway.py.

A fault applies to its next `times` calls, or to every call for `seconds` (an outage), or until cleared."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class RouteFault:
    route: str  # "METHOD /template" or "*" for every route
    status: int | None = None  # 5xx or 429 to answer instead of handling
    retry_after: float = 1.0  # for 429
    delay: float = 0.0  # seconds to wait before handling
    times: int | None = 1  # None: until cleared (or until `until`)
    until: float | None = None  # time.monotonic() at which the fault ends by itself
    handled: bool = False  # the call is carried out, then its answer is lost (replaced by `status`)
    hits: int = 0

    def matches(self, route_key: str) -> bool:
        return self.route == "*" or self.route == route_key

    def over(self, now: float) -> bool:
        return (self.until is not None and now >= self.until) or (self.times is not None and self.hits >= self.times)


@dataclass
class Faults:
    routes: list[RouteFault] = field(default_factory=list)

    def _add(self, fault: RouteFault, seconds: float | None) -> RouteFault:
        if seconds is not None:
            fault.times, fault.until = None, time.monotonic() + seconds
        self.routes.append(fault)
        return fault

    def fail(self, route: str, status: int = 500, *, times: int | None = 1, seconds: float | None = None,
             handled: bool = False) -> RouteFault:
        """Answer `status` (500, 502, 503...) instead of handling the next `times` calls of `route`, or every
        call for `seconds`. With `handled`, the call is carried out first and only its answer is lost on
        the way back (as when a proxy times out after Discord did the work)."""
        return self._add(RouteFault(route, status=status, times=times, handled=handled), seconds)

    def rate_limit(self, route: str, retry_after: float = 1.0, *, times: int | None = 1,
                   seconds: float | None = None) -> RouteFault:
        """Answer 429 with `retry_after` to the next `times` calls of `route`, or to every call for `seconds`."""
        return self._add(RouteFault(route, status=429, retry_after=retry_after, times=times), seconds)

    def delay(self, route: str, seconds: float, *, times: int | None = None) -> RouteFault:
        """Hold calls of `route` for `seconds` before handling them (as a slow network would)."""
        fault = RouteFault(route, delay=seconds, times=times)
        self.routes.append(fault)
        return fault

    def clear(self) -> None:
        self.routes.clear()

    def take(self, route_key: str) -> list[RouteFault]:
        """Faults that apply to this call; used-up and ended ones are removed."""
        now = time.monotonic()
        self.routes = [fault for fault in self.routes if not fault.over(now)]
        hit = []
        for fault in list(self.routes):
            if fault.matches(route_key):
                fault.hits += 1
                hit.append(fault)
                if fault.over(now):
                    self.routes.remove(fault)
        return hit
