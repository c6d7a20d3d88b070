"""A reply's text as tokens arrive: UTF-8 decoded across token boundaries, stop strings cut off."""

from __future__ import annotations

import codecs


class StopTextBuffer:
    """``feed`` token bytes, get back the text that is safe to show: text that might be the
    beginning of a stop string is held back until the next token tells. ``text`` is the reply."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.text = ""
        self._emitted = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._longest = max((len(s) for s in self.stops), default=0)

    def feed(self, data: bytes) -> tuple[str, bool]:
        """(text to show now, whether a stop string was hit: the reply ends there)."""
        return self._add(self._decoder.decode(data))

    def finish(self) -> tuple[str, bool]:
        """The rest at the end of the reply (bytes of an unfinished character, held-back text)."""
        shown, stopped = self._add(self._decoder.decode(b"", final=True))
        if stopped:
            return shown, True
        return shown + self._take(len(self.text)), False

    def _add(self, text: str) -> tuple[str, bool]:
        if not text:
            return "", False
        self.text += text
        if not self.stops:
            return self._take(len(self.text)), False
        search_from = max(0, self._emitted - self._longest)
        hits = [i for i in (self.text.find(s, search_from) for s in self.stops) if i >= 0]
        if hits:
            self.text = self.text[: min(hits)]
            return self._take(len(self.text)), True
        hold = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(self.text)), hold, -1):
                if self.text.endswith(s[:k]):
                    hold = k
                    break
        return self._take(len(self.text) - hold), False

    def _take(self, upto: int) -> str:
        if upto <= self._emitted:
            return ""
        out = self.text[self._emitted : upto]
        self._emitted = upto
        return out
