"""Fault injection: chosen REST routes answer 5xx or 429 or are slowed down; gateway faults live in gateway.py."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RouteFault:
    route: str  # "METHOD /template" or "*" for every route
    status: int | None = None  # 5xx or 429 to answer instead of handling
    retry_after: float = 1.0  # for 429
    delay: float = 0.0  # seconds to wait before handling
    times: int | None = 1  # None: until cleared
    hits: int = 0

    def matches(self, route_key: str) -> bool:
        return self.route == "*" or self.route == route_key


@dataclass
class Faults:
    routes: list[RouteFault] = field(default_factory=list)

    def fail(self, route: str, status: int = 500, *, times: int | None = 1) -> RouteFault:
        """Answer `status` (500, 502, 503...) instead of handling the next `times` calls of `route`."""
        fault = RouteFault(route, status=status, times=times)
        self.routes.append(fault)
        return fault

    def rate_limit(self, route: str, retry_after: float = 1.0, *, times: int | None = 1) -> RouteFault:
        """Answer 429 with `retry_after` to the next `times` calls of `route`."""
        fault = RouteFault(route, status=429, retry_after=retry_after, times=times)
        self.routes.append(fault)
        return fault

    def delay(self, route: str, seconds: float, *, times: int | None = None) -> RouteFault:
        """Hold calls of `route` for `seconds` before handling them (as a slow network would)."""
        fault = RouteFault(route, delay=seconds, times=times)
        self.routes.append(fault)
        return fault

    def clear(self) -> None:
        self.routes.clear()

    def take(self, route_key: str) -> list[RouteFault]:
        """Faults that apply to this call; used-up ones are removed."""
        hit = []
        for fault in list(self.routes):
            if fault.matches(route_key):
                fault.hits += 1
                hit.append(fault)
                if fault.times is not None and fault.hits >= fault.times:
                    self.routes.remove(fault)
        return hit
