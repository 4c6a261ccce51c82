"""Publish policy: which event `source` values each producer may publish.

No policy anywhere means every producer may publish anything. Once any producer of
`inputs:` has a `publish` list, it is deny by default: a producer without one, and an
input no producer matches, may publish nothing.
"""

from __future__ import annotations

import fnmatch
import os
import re
from typing import Any

from evroute.config.model import Config, InputConfig

# sources already judged, per policy; bounded, since sources come from events
CACHE_LIMIT = 4096


class PublishPolicy:
    """What one producer may publish; `refusal` says why an event may not pass."""

    def __init__(self, producer: str, patterns: tuple[str, ...] | None, reason: str = "") -> None:
        self.producer = producer
        self.patterns = patterns or ()
        self.exact = frozenset(p for p in self.patterns if not _is_glob(p))
        globs = [fnmatch.translate(p) for p in self.patterns if _is_glob(p)]
        self.glob = re.compile("|".join(globs)) if globs else None
        # why nothing may be published, when `patterns` is None
        self.reason = reason
        self._judged: dict[str, str | None] = {}

    def refusal(self, source: Any) -> str | None:
        """None when an event with this `source` may be published, else why not."""
        if type(source) is not str:
            shown = "no source" if source is None else f"a source that is no string ({source!r})"
            return self._refuse(f"the event has {shown}")
        judged = self._judged.get(source, "")
        if judged != "":
            return judged
        allowed = source in self.exact or (self.glob is not None and self.glob.match(source))
        verdict = None if allowed else self._refuse(f"it may not publish source {source!r}")
        if len(self._judged) < CACHE_LIMIT:
            self._judged[source] = verdict
        return verdict

    def _refuse(self, what: str) -> str:
        if self.reason:
            return f"{self.reason}: {what}"
        allowed = ", ".join(self.patterns) if self.patterns else "nothing"
        return f"producer {self.producer}: {what} (publish: {allowed})"


def _is_glob(pattern: str) -> bool:
    return any(char in pattern for char in "*?[")


class PublishPolicies:
    """The policy of each input: of a config's producers, or of an input named on the
    command line, matched to a producer by its file globs (`-` by the stdin producer)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.enforced = any(producer.publish is not None for producer in config.inputs)

    def of_producer(self, producer: InputConfig) -> PublishPolicy | None:
        if not self.enforced:
            return None
        if producer.publish is None:
            return PublishPolicy(
                producer.name,
                None,
                f"producer {producer.name} has no publish list, and other producers do"
                " (deny by default)",
            )
        return PublishPolicy(producer.name, producer.publish)

    def of_input(self, name: str, identity: tuple[int, int] | None) -> PublishPolicy | None:
        """The policy of an input named on the command line: the file it is, as
        (device, inode), matched against the files the globs name; None for stdin."""
        if not self.enforced:
            return None
        producer = self._producer_of(identity)
        if producer is not None:
            return self.of_producer(producer)
        return PublishPolicy(
            name,
            None,
            f"input {name} matches no producer of the config's inputs:, and producers"
            " there have publish lists (deny by default)",
        )

    def _producer_of(self, identity: tuple[int, int] | None) -> InputConfig | None:
        if identity is None:
            base_dir = self.config.base_dir
            return next((p for p in self.config.inputs if "-" in p.options.reads(base_dir)), None)
        # by the file itself, not its name: `link/../x` or a symlinked folder must get
        # the policy of the file they open, whatever their text looks like
        for producer in self.config.inputs:
            for match in producer.options.reads(self.config.base_dir):
                if match == "-":
                    continue
                try:
                    info = os.stat(match)
                except OSError:
                    continue
                if (info.st_dev, info.st_ino) == identity:
                    return producer
        return None
