"""What NATS inputs and consumers share in a config: their connection options
(servers, TLS, credentials), the stream they name, and what a subject may be.

Light to import (checking any config reads it); nats/client.py does the connecting.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from evroute.config.checker import join
from evroute.config.json_schema import DURATION, STRING, Schema, integer, object_schema

if TYPE_CHECKING:
    from evroute.config.checker import Checker
    from evroute.config.yaml_loader import Node

CONNECTION_KEYS = ("url", "tls", "creds", "user", "password")
TLS_KEYS = ("ca", "cert", "key")
SCHEMES = ("nats", "tls")
# Subject tokens are separated by dots; these characters are wildcards or separators.
SUBJECT_UNSAFE = frozenset(" \t\r\n.*>")


class NatsProblem(Exception):
    """A NATS server or stream that cannot be used, said for the user."""


@dataclass(frozen=True)
class TlsFiles:
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None


@dataclass(frozen=True)
class NatsConnection:
    """How to reach the servers, and as whom."""

    servers: tuple[str, ...]
    tls: TlsFiles | None = None
    creds: Path | None = None
    user: str | None = None
    password: str | None = None

    @property
    def shown(self) -> str:
        """The servers as the user wrote them, without any password in a URL."""
        return ", ".join(_without_password(server) for server in self.servers)


@dataclass(frozen=True)
class StreamSpec:
    """A stream by name; with subjects, created when missing."""

    name: str
    subjects: tuple[str, ...] | None = None


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def parse_connection(
    checker: Checker, node: Node, fields: dict[str, Node], path: str, base_dir: Path
) -> NatsConnection | None:
    """The connection options of a `nats:` mapping; problems go to the checker."""

    ok = True
    servers: list[str] = []
    if "url" not in fields:
        checker.error(node, join(path, "url"), "is missing: the server, e.g. nats://127.0.0.1:4222")
        ok = False
    else:
        node = fields["url"]
        items = list(enumerate(node.value)) if node.is_sequence else [(None, node)]
        if not items:
            checker.error(node, join(path, "url"), "must name at least one server")
            ok = False
        for index, item in items:
            item_path = join(path, "url") if index is None else join(join(path, "url"), index)
            url = checker.string(item, item_path)
            problem = None if url is None else _url_problem(url)
            if url is None or problem is not None:
                if problem is not None:
                    checker.error(item, item_path, problem)
                ok = False
            else:
                servers.append(url)
    tls = None
    if "tls" in fields:
        tls = _parse_tls(checker, fields["tls"], join(path, "tls"), base_dir)
        ok = ok and tls is not None
    creds = None
    if "creds" in fields:
        text = checker.string(fields["creds"], join(path, "creds"))
        ok = ok and text is not None
        if text is not None:
            creds = _existing_file(checker, fields["creds"], join(path, "creds"), base_dir, text)
    user = password = None
    if "user" in fields:
        user = checker.string(fields["user"], join(path, "user"))
        ok = ok and user is not None
    if "password" in fields:
        password = checker.string(fields["password"], join(path, "password"), allow_empty=True)
        ok = ok and password is not None
        if "user" not in fields:
            checker.error(fields["password"], join(path, "password"), "needs a user: add user:")
            ok = False
    if creds is not None and user is not None:
        checker.error(
            fields["creds"], join(path, "creds"), "a credentials file and a user exclude each other"
        )
        ok = False
    if not ok:
        return None
    return NatsConnection(tuple(servers), tls, creds, user, password)


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as error:
        return f"is not a server URL ({error}); write e.g. nats://127.0.0.1:4222"
    if parts.scheme not in SCHEMES or not parts.hostname:
        return f"{url!r} is not a server URL; write nats://HOST:PORT (or tls://HOST:PORT)"
    return None


def _parse_tls(checker: Checker, node: Node, path: str, base_dir: Path) -> TlsFiles | None:
    fields = checker.mapping(node, path)
    if fields is None:
        return None
    checker.known_keys(node, path, TLS_KEYS)
    files: dict[str, Path | None] = {}
    ok = True
    for key in TLS_KEYS:
        if key in fields:
            text = checker.string(fields[key], join(path, key))
            found = (
                None
                if text is None
                else _existing_file(checker, fields[key], join(path, key), base_dir, text)
            )
            ok = ok and found is not None
            files[key] = found
    if ("cert" in fields) != ("key" in fields):
        missing = "key" if "cert" in fields else "cert"
        checker.error(node, join(path, missing), "is missing: a client certificate needs its key")
        ok = False
    return TlsFiles(files.get("ca"), files.get("cert"), files.get("key")) if ok else None


def _existing_file(
    checker: Checker, node: Node, path: str, base_dir: Path, text: str
) -> Path | None:
    found = (base_dir / text) if not Path(text).is_absolute() else Path(text)
    if not found.is_file():
        checker.error(node, path, f"{text!r} is not a file")
        return None
    return found


def parse_stream(checker: Checker, node: Node, path: str) -> StreamSpec | None:
    """`stream: NAME` (it must exist) or `stream: {name, subjects}` (created if missing)."""

    if not node.is_mapping:
        name = checker.string(node, path)
        return (
            None
            if name is None or not _stream_name_ok(checker, node, path, name)
            else (StreamSpec(name))
        )
    fields = checker.mapping(node, path)
    if fields is None:
        return None
    checker.known_keys(node, path, ("name", "subjects"))
    if "name" not in fields:
        checker.error(node, join(path, "name"), "is missing")
        return None
    name = checker.string(fields["name"], join(path, "name"))
    if name is None or not _stream_name_ok(checker, fields["name"], join(path, "name"), name):
        return None
    if "subjects" not in fields:
        checker.error(node, join(path, "subjects"), "is missing: the subjects the stream takes")
        return None
    subjects_node = fields["subjects"]
    if not subjects_node.is_sequence or not subjects_node.value:
        checker.error(subjects_node, join(path, "subjects"), "expected a list of subjects")
        return None
    subjects = []
    for index, item in enumerate(subjects_node.value):
        subject = checker.string(item, join(join(path, "subjects"), index))
        if subject is None:
            return None
        problem = subject_problem(subject, wildcards=True)
        if problem is not None:
            checker.error(item, join(join(path, "subjects"), index), problem)
            return None
        subjects.append(subject)
    return StreamSpec(name, tuple(subjects))


def _stream_name_ok(checker: Checker, node: Node, path: str, name: str) -> bool:
    if not name or any(char in NAME_UNSAFE for char in name):
        checker.error(
            node, path, f"{name!r} is not a stream name: no spaces, '.', '*', '>', '/' or '\\'"
        )
        return False
    return True


def subject_problem(subject: str, wildcards: bool) -> str | None:
    """Why `subject` is no valid NATS subject (with `*` and `>` allowed or not)."""
    tokens = subject.split(".")
    for index, token in enumerate(tokens):
        if not token:
            return f"{subject!r} has an empty token: no '..', and no '.' at either end"
        if any(char in " \t\r\n" for char in token):
            return f"{subject!r} has white space; subjects have none"
        if token in ("*", ">") and wildcards:
            if token == ">" and index != len(tokens) - 1:
                return f"{subject!r}: '>' may only be the last token"
            continue
        if "*" in token or ">" in token:
            if not wildcards:
                return f"{subject!r} has a wildcard; a published subject names one subject"
            return f"{subject!r}: '*' and '>' must be whole tokens"
    return None


# What a stream's or a consumer's name may not hold (nats-server refuses them).
NAME_UNSAFE = SUBJECT_UNSAFE | frozenset("/\\")


def subject_within(inner: str, outer: str) -> bool:
    """Whether every subject `inner` matches (wildcards and all) `outer` matches too."""
    a, b = inner.split("."), outer.split(".")
    for index, token in enumerate(b):
        if token == ">":
            return len(a) > index
        if index >= len(a) or a[index] == ">":
            return False
        if token != "*" and token != a[index]:
            return False
    return len(a) == len(b)


def subjects_overlap(first: str, second: str) -> bool:
    """Whether some subject matches both (each may have `*` and `>` wildcards)."""
    a, b = first.split("."), second.split(".")
    for index in range(max(len(a), len(b))):
        left = a[index] if index < len(a) else None
        right = b[index] if index < len(b) else None
        if left == ">" or right == ">":
            return left is not None and right is not None
        if left is None or right is None:
            return False
        if left != right and "*" not in (left, right):
            return False
    return True


def nats_schema(keys: tuple[str, ...], defaults: dict[str, object], required: list[str]) -> Schema:
    """A `nats:` mapping's JSON Schema: the connection, and what an input reads or a
    consumer publishes (`keys`, out of all a nats mapping may hold)."""
    server: Schema = {**STRING, "description": "nats://HOST:PORT or tls://HOST:PORT"}
    file_path: Schema = {**STRING, "description": "a file, relative to the config"}
    stream_spec = object_schema(
        ("name", "subjects"),
        {"name": STRING, "subjects": {"type": "array", "items": STRING, "minItems": 1}},
    )
    stream_spec["required"] = ["name", "subjects"]
    shapes: dict[str, Schema] = {
        "url": {"anyOf": [server, {"type": "array", "items": server, "minItems": 1}]},
        "tls": object_schema(TLS_KEYS, dict.fromkeys(TLS_KEYS, file_path)),
        "creds": {**file_path, "description": "a NATS credentials file"},
        "user": STRING,
        "password": {"type": "string"},
        "stream": {
            "anyOf": [STRING, stream_spec],
            "description": "a stream that exists, or {name, subjects}: created when missing",
        },
        "subject": STRING,
        "durable": {**STRING, "description": "instances with the same durable share the messages"},
        "batch": integer(1),
        "ack_wait": DURATION,
        "max_ack_pending": integer(1),
    }
    schema = object_schema(keys, shapes, defaults)
    schema["required"] = required
    return schema
