"""`validate --events FILE`: a config checked against sample events. Routes that no
sample matches and consumers no sample reaches are warnings; a bad sample is an error."""

from __future__ import annotations

import gzip
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from evroute import expr
from evroute.config.checker import Issue
from evroute.config.model import Config
from evroute.core.json_codec import Malformed, parse_event
from evroute.core.lines import BOM
from evroute.core.wording import plural
from evroute.storage.fileio import printable

SAMPLE_LIMIT = 1_000_000  # samples read at most: a check, not a run


def read_samples(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of each line that is not blank; .gz is read transparently."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as stream:
        for number, line in enumerate(stream, start=1):
            if number == 1:
                line = line.removeprefix(BOM)
            if line.strip():
                yield number, line
            if number >= SAMPLE_LIMIT:
                return


def check_samples(config: Config, path: Path, config_name: str) -> list[Issue]:
    """What the sample events in `path` tell about `config` (named `config_name` in
    what it says, as the user wrote it)."""
    name = printable(str(path))
    issues: list[Issue] = []
    matched: Counter[str] = Counter()
    reached: Counter[str] = Counter()
    events = 0
    try:
        for number, line in read_samples(path):
            try:
                event = parse_event(line)
            except Malformed as error:
                issues.append(Issue(name, number, 1, "error", "", f"not an event: {error}"))
                continue
            events += 1
            for route in config.routes:
                try:
                    if route.matches(event):
                        matched[route.name] += 1
                        reached.update(route.to)
                except (expr.ExpressionError, RecursionError):
                    pass  # a filter_error in a run: this event does not match
    except (OSError, EOFError, zlib.error) as error:  # BadGzipFile is an OSError
        reason = getattr(error, "strerror", None) or str(error)
        return [Issue(name, 1, 1, "error", "", f"cannot read the sample events: {reason}")]
    if not events:
        return [*issues, Issue(name, 1, 1, "warning", "", "holds no sample event")]
    config_file = printable(config_name)
    about_config: list[Issue] = []
    for index, route in enumerate(config.routes):
        if not matched[route.name]:
            about_config.append(
                Issue(
                    config_file,
                    route.line,
                    route.column,
                    "warning",
                    f"routes[{index}]",
                    f"no sample event in {name} matches route {route.name!r}"
                    f" ({plural(events, 'event', grouped=False)})",
                )
            )
    fed = {consumer for route in config.routes for consumer in route.to}
    for consumer, settings in config.consumers.items():
        if consumer in fed and not reached[consumer] and config.unmatched != consumer:
            about_config.append(
                Issue(
                    config_file,
                    settings.line,
                    settings.column,
                    "warning",
                    f"consumers.{consumer}",
                    f"no sample event in {name} reaches consumer {consumer!r}",
                )
            )
    return [*issues, *sorted(about_config, key=lambda issue: (issue.line, issue.column))]
