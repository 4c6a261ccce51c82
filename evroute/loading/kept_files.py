"""Files a config names: no two writers of one file (consumers, dead letters, the audit
log), and the key that seals the files evroute keeps (`encrypt:`)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from evroute.config.checker import (
    Checker,
    KeptFile,
    Severity,
    join,
)
from evroute.config.model import (
    ConsumerConfig,
    EncryptSettings,
    Rotation,
)
from evroute.config.yaml_loader import Node
from evroute.sinks import SINK_KINDS  # the sink kinds own their options
from evroute.storage.crypto import (
    KEYGEN_HINT,
    NOT_A_NAME,
    Key,
    KeyProblem,
    is_variable_name,
    key_file_warning,
)

ENCRYPT_KEYS = ("key_env", "key_file")


def read_encrypt(
    checker: Checker, node: Node, base_dir: Path, environ: Mapping[str, str], no_env: bool
) -> EncryptSettings | None:
    """`encrypt: {key_env: NAME}` or `{key_file: PATH}`; the key must be there and be a
    key (with --no-env, a missing one is a warning: CI has no secrets)."""
    fields = checker.mapping(node, "encrypt")
    if fields is None:
        return None
    checker.known_keys(node, "encrypt", ENCRYPT_KEYS)
    given = [key for key in ENCRYPT_KEYS if key in fields]
    if len(given) != 1:
        problem = "has both key_env and key_file" if given else "is empty"
        checker.error(
            node,
            "encrypt",
            f"{problem}; give exactly one: key_env: NAME (an environment variable holding"
            " the key) or key_file: PATH",
        )
        return None
    path = join("encrypt", given[0])
    value_node = fields[given[0]]
    text = checker.string(value_node, path)
    if text is None:
        return None
    missing: Severity = "warning" if no_env else "error"
    if given[0] == "key_env":
        if not is_variable_name(text):
            checker.error(value_node, path, NOT_A_NAME)
            return None
        value = environ.get(text)
        if not value:
            checker.report(
                missing,
                value_node,
                path,
                f"environment variable {text} is not set: it must hold the encryption key;"
                f" {KEYGEN_HINT} (export {text}=$(evroute keygen))",
            )
        else:
            try:
                Key.from_text(value, f"environment variable {text}")
            except KeyProblem as error:
                checker.error(value_node, path, str(error))
        return EncryptSettings(key_env=text)
    key_file = base_dir / text
    try:
        content = key_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        severity: Severity = missing if isinstance(error, FileNotFoundError) else "error"
        checker.report(severity, value_node, path, f"cannot read the key file {key_file}: {reason}")
    else:
        try:
            Key.from_text(content, f"the key file {key_file}")
        except KeyProblem as error:
            checker.error(value_node, path, str(error))
        unsafe = key_file_warning(key_file)
        if unsafe is not None:
            checker.warning(value_node, path, unsafe)
    return EncryptSettings(key_file=key_file)


def rotated_names(path: Path, rotation: Rotation | None) -> list[Path]:
    """The old files a rotating file is renamed to: FILE.1 to FILE.keep."""
    if rotation is None:
        return []
    return [path.with_name(f"{path.name}.{number}") for number in range(1, rotation.keep + 1)]


def check_shared_files(
    checker: Checker,
    base_dir: Path,
    consumers: Mapping[str, ConsumerConfig],
    nodes: Mapping[str, Node],
    kept: list[KeptFile],
) -> None:
    """Two writers of one file interleave and, in overwrite mode, erase each other.
    `kept` are the files evroute keeps for itself (dead letters, audit log).

    A templated path is compared by its pattern: the same template twice is an error;
    a literal file that the template could produce is a warning, since whether an
    event's values ever name it is up to the events."""
    writers: dict[Path, str] = {}
    templates: dict[str, tuple[str, str, re.Pattern[str]]] = {}
    folders: dict[Path, str] = {}
    for name, consumer in consumers.items():
        for output in SINK_KINDS[consumer.kind].outputs(consumer.options):
            node = nodes[name].value[output.key]
            node_path = join(join("consumers", name), output.key)
            if output.form == "folder":
                folder = Path(os.path.normpath(base_dir / output.path))
                if folder in folders:
                    checker.error(
                        node,
                        node_path,
                        f"consumer {folders[folder]!r} archives to this folder too; a replay"
                        " would give their events twice: give each archive its own folder",
                    )
                folders.setdefault(folder, name)
            elif output.template is not None:
                # NUL cannot be in a config's string: it stands for the values
                key = os.path.normpath(os.path.join(base_dir, output.template.pattern("\0")))
                if key in templates:
                    checker.error(
                        node,
                        node_path,
                        f"consumer {templates[key][0]!r} writes these files too (the same"
                        " template); give each its own folder or template",
                    )
                    continue
                regex = "[^/]+".join(re.escape(piece) for piece in key.split("\0"))
                templates[key] = (name, output.key, re.compile(regex))
            else:
                path = Path(os.path.normpath(base_dir / output.path))
                # FILE.1... when it rotates
                for written in [path, *rotated_names(path, output.rotation)]:
                    if written in writers:
                        what = (
                            "this file"
                            if written == path
                            else f"{written.name}, a rotated name of it,"
                        )
                        checker.error(
                            node,
                            node_path,
                            f"consumer {writers[written]!r} writes {what} too; give each its"
                            " own file (a rotating file also writes FILE.1, FILE.2...)",
                        )
                        break
                    writers[written] = name
    writer_names = {path: f"consumer {name!r}" for path, name in writers.items()}
    for key, kept_path, kept_node, kept_rotation, what_it_is in kept:
        path = Path(os.path.normpath(kept_path))
        for written in [path, *rotated_names(path, kept_rotation)]:
            if written in writer_names:
                what = "this file" if written == path else f"{written.name}, a rotated name of it"
                checker.error(
                    kept_node,
                    key,
                    f"{writer_names[written]} writes {what}; {what_it_is} needs a file of its own",
                )
                break
            writer_names[written] = what_it_is  # compared with the templates below
    for template_name, template_key, pattern in templates.values():
        for path, writer in writer_names.items():
            if not pattern.fullmatch(str(path)):
                continue
            whose = f"{writer} writes"
            shown = os.path.relpath(path, base_dir)
            checker.warning(
                nodes[template_name].value[template_key],
                join(join("consumers", template_name), template_key),
                f"an event's values could make this template name {shown!r}, which"
                f" {whose}; keep them in separate folders",
            )
