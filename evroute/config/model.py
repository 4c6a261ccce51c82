"""The validated config: what the rest of evroute is built from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from evroute.expr import Expression

if TYPE_CHECKING:
    from evroute.patterns import Pattern

ON_FULL_POLICIES = ("block", "drop_newest", "drop_oldest", "spill")
UNMATCHED_DROP = "drop"
UNMATCHED_DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class QueueSettings:
    """How much a consumer's queue holds, and what happens when it is full."""

    buffer: int = 10_000
    buffer_bytes: int = 64 << 20
    on_full: str = "spill"  # the backlog goes to disk, then the queue blocks
    spill_max_bytes: int = 1 << 30  # disk a spilled backlog may use
    retries: int = 3  # further attempts at a failed delivery, with backoff


@dataclass(frozen=True)
class Rotation:
    """A file renamed away once it would pass `bytes`, keeping `keep` old ones."""

    bytes: int
    keep: int = 5


FIELDS_MODES = ("include", "redact")
# A step of a fields path: a field's name, or EACH (`[*]`): every element of an array
EACH = None
FieldStep = str | None


@dataclass(frozen=True)
class FieldsPolicy:
    """A consumer's subscribe policy (`fields:`): it sees only the paths listed
    (include), or everything but them (redact). shaping/fields_gate.py applies it."""

    mode: str  # include | redact
    paths: tuple[tuple[FieldStep, ...], ...]
    sources: tuple[str, ...]  # the paths as written, for messages


@dataclass(frozen=True)
class ConsumerConfig:
    name: str
    kind: str  # the sink kind, as registered in evroute.sinks
    options: Any  # the kind's own options, parsed by its module
    queue: QueueSettings
    line: int = 1  # where it is in the config, for what validate says
    column: int = 1
    fields: FieldsPolicy | None = None  # what it may see of the events


@dataclass(frozen=True)
class RouteConfig:
    name: str
    to: tuple[str, ...]
    filter: Expression | None = None
    transform: Expression | None = None
    line: int = 1  # of its filter or pattern (else of the route), for what validate says
    column: int = 1
    pattern: Pattern | None = None  # an EventBridge event pattern, instead of a filter

    def matches(self, event: dict[str, Any]) -> bool:
        """Whether the route takes the event: its filter's or its pattern's say, or yes;
        a filter's JMESPath error is raised (a filter_error in a run)."""
        if self.pattern is not None:
            return self.pattern.matches(event)
        return self.filter is None or self.filter.test(event)


@dataclass(frozen=True)
class InputConfig:
    """A producer of the `inputs:` section; `kind` names its kind in the input registry
    (evroute.sources), whose options it holds."""

    name: str
    kind: str
    options: InputOptions
    publish: tuple[str, ...] | None = None  # event sources it may publish; None: no policy
    line: int = 1
    column: int = 1


class InputOptions(Protocol):
    """What every input kind's options tell: the files a producer reads, so that an
    input named on the command line gets the publish policy of the producer it is."""

    def reads(self, base_dir: Path) -> list[str]:
        """The paths it reads now, its globs matched under `base_dir` ("-" for stdin;
        none for an input that reads no file)."""
        ...


@dataclass(frozen=True)
class EncryptSettings:
    """`encrypt:`: where the key that seals the files evroute keeps comes from."""

    key_env: str | None = None  # an environment variable holding the key...
    key_file: Path | None = None  # ...or a file, relative to the config's folder


@dataclass(frozen=True)
class TestCase:
    """One routing test of the config's `tests:` section, run by `evroute test`."""

    __test__ = False  # not a pytest test class, whatever its name says

    name: str
    event: dict[str, Any]
    routes: frozenset[str]  # exactly the routes that must match
    outputs: dict[str, list[Any]] | None = None  # consumer: exactly what it must get
    line: int = 1  # where the case is in the config, for the report
    column: int = 1


@dataclass(frozen=True)
class Config:
    path: Path
    base_dir: Path  # relative paths and commands' working directory
    consumers: dict[str, ConsumerConfig] = field(default_factory=dict)
    routes: list[RouteConfig] = field(default_factory=list)
    dead_letter: Path | None = None
    dead_letter_rotation: Rotation | None = None
    unmatched: str = UNMATCHED_DROP  # drop | dead_letter | a consumer's name
    max_event_bytes: int = 1 << 20
    shutdown_timeout: float = 10.0
    tests: list[TestCase] = field(default_factory=list)
    encrypt: EncryptSettings | None = None  # seal dead letters, spill, audit, archives
    inputs: list[InputConfig] = field(default_factory=list)
    audit: Path | None = None
    audit_rotation: Rotation | None = None
