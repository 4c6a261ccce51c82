"""NATS in transit: TLS with a client certificate, a credentials file (a server in
operator mode, its JWTs made here), and a user and password from the environment, each
against a real nats-server that demands it; and what a refused connection or unreadable
TLS files say."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import os
import signal
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nkeys
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from nats_server import NatsServer, serving
from runs import (
    lines_in,
    read_jsonl,
    read_stats,
    run_evroute,
    start_evroute,
    stop_evroute,
    wait_for,
    write_config,
)

EVENTS = 200


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    usage: str,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    issuer_name, issuer_key = issuer if issuer is not None else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if usage == "ca":
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    else:
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        oid = (
            x509.ExtendedKeyUsageOID.SERVER_AUTH
            if usage == "server"
            else (x509.ExtendedKeyUsageOID.CLIENT_AUTH)
        )
        builder = builder.add_extension(x509.ExtendedKeyUsage([oid]), False)
        if usage == "server":
            address = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
            builder = builder.add_extension(x509.SubjectAlternativeName([address]), False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(folder: Path, name: str, certificate: x509.Certificate, key: Any) -> None:
    (folder / f"{name}.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def make_certificates(folder: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all from it."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("evroute test CA", ca_key, None, "ca")
    _write(folder, "ca", ca, ca_key)
    for name in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        _write(folder, name, _certificate(name, key, ("evroute test CA", ca_key), name), key)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A server that speaks only TLS and wants a client certificate from the CA."""
    certs = tmp_path / "certs"
    certs.mkdir()
    make_certificates(certs)
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    context.load_cert_chain(str(certs / "client.pem"), str(certs / "client.key"))
    with serving(
        tmp_path,
        extra=(
            "--tls",
            "--tlscert",
            str(certs / "server.pem"),
            "--tlskey",
            str(certs / "server.key"),
            "--tlsverify",
            "--tlscacert",
            str(certs / "ca.pem"),
        ),
        client_options={"tls": context},
    ) as server:
        yield server


@pytest.fixture
def password_server(tmp_path: Path) -> Iterator[NatsServer]:
    with serving(
        tmp_path,
        extra=("--user", "router", "--pass", "s3cret"),
        client_options={"user": "router", "password": "s3cret"},
    ) as server:
        yield server


# --- a credentials file: an operator, its system account and an account with JetStream,
# and a user of that account, as JWTs signed with their issuers' nkeys (what `nsc` makes)


def _nkey(prefix: int) -> Any:
    return nkeys.from_seed(nkeys.encode_seed(os.urandom(32), prefix))


def _jwt(claims: dict[str, Any], issuer: Any) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    claims = {**claims, "iat": int(time.time()), "iss": issuer.public_key.decode()}
    digest = hashlib.sha256(json.dumps(claims).encode()).digest()
    claims["jti"] = base64.b32encode(digest).rstrip(b"=").decode()
    body = b64(json.dumps(claims).encode())
    return f"{header}.{body}.{b64(issuer.sign(f'{header}.{body}'.encode()))}"


def make_operator(folder: Path) -> tuple[Path, Path]:
    """(the server's config, a user's credentials file)."""
    operator = _nkey(nkeys.PREFIX_BYTE_OPERATOR)
    system, account = _nkey(nkeys.PREFIX_BYTE_ACCOUNT), _nkey(nkeys.PREFIX_BYTE_ACCOUNT)
    user = _nkey(nkeys.PREFIX_BYTE_USER)
    unlimited = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1}
    unlimited |= {"wildcards": True, "conn": -1, "leaf": -1}
    jetstream = {"mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}

    def claims(key: Any, name: str, nats: dict[str, Any]) -> dict[str, Any]:
        return {"sub": key.public_key.decode(), "name": name, "nats": {**nats, "version": 2}}

    tokens = {
        "operator": _jwt(claims(operator, "op", {"type": "operator"}), operator),
        "system": _jwt(claims(system, "SYS", {"type": "account", "limits": unlimited}), operator),
        "account": _jwt(
            claims(account, "shop", {"type": "account", "limits": unlimited | jetstream}),
            operator,
        ),
        "user": _jwt(
            claims(user, "router", {"type": "user", "pub": {}, "sub": {}} | unlimited), account
        ),
    }
    config = folder / "server.conf"
    config.write_text(
        f'operator: "{tokens["operator"]}"\n'
        f"system_account: {system.public_key.decode()}\n"
        "resolver: MEMORY\n"
        "resolver_preload: {\n"
        f'  {system.public_key.decode()}: "{tokens["system"]}"\n'
        f'  {account.public_key.decode()}: "{tokens["account"]}"\n'
        "}\n"
    )
    creds = folder / "router.creds"
    creds.write_text(
        f"-----BEGIN NATS USER JWT-----\n{tokens['user']}\n------END NATS USER JWT------\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{user.seed.decode()}\n------END USER NKEY SEED------\n"
    )
    return config, creds


@pytest.fixture
def operator_server(tmp_path: Path) -> Iterator[NatsServer]:
    config, creds = make_operator(tmp_path)
    with serving(
        tmp_path, extra=("-c", str(config)), client_options={"user_credentials": str(creds)}
    ) as server:
        yield server


def publish_then_route(folder: Path, connection: str, env: dict[str, str]) -> dict[str, Any]:
    """Publish EVENTS events with a nats consumer (creating the stream), route them with
    a nats input to a file, stop it; the router's stats."""
    publisher = write_config(
        folder,
        f"""\
        version: 1
        consumers:
          bus:
            nats:
              {connection}
              subject: 'orders.{{kind}}'
              stream: {{name: ORDERS, subjects: ["orders.>"]}}
        routes:
          - {{name: all, to: bus}}
        """,
        "publish.yaml",
    )
    events = b"".join(b'{"id":%d,"kind":"k%d"}\n' % (n, n % 3) for n in range(EVENTS))
    published = run_evroute(
        ["run", publisher, "-", "--stats", "off"], folder, stdin=events, timeout=60, env=env
    )
    assert published.returncode == 0, published.stderr.decode()
    router = write_config(
        folder,
        f"""\
        version: 1
        inputs:
          - name: bus
            nats:
              {connection}
              stream: ORDERS
              durable: router
        consumers:
          out: {{file: out.jsonl}}
        routes:
          - {{name: all, to: out}}
        """,
        "route.yaml",
    )
    process = start_evroute(
        ["run", router, "--stats", "off", "--stats-json", "stats.json"], folder, env
    )
    try:

        def routed() -> bool:
            assert process.poll() is None, (folder / "stderr.txt").read_text(errors="replace")
            return lines_in(folder / "out.jsonl") >= EVENTS

        wait_for(routed, 60, "the router routing every event")
    finally:
        stderr = stop_evroute(process, folder)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    ids = sorted(event["id"] for event in read_jsonl(folder / "out.jsonl"))
    assert ids == list(range(EVENTS))
    return read_stats(folder / "stats.json")


def refusal(folder: Path, nats_options: str) -> str:
    """What `evroute run` says (it must exit 1) when its nats input cannot connect."""
    config = write_config(
        folder,
        f"""\
        version: 1
        inputs:
          - {{name: bus, nats: {{{nats_options}, stream: S}}}}
        consumers: {{out: {{file: out.jsonl}}}}
        routes: [{{name: all, to: out}}]
        """,
        "route.yaml",
    )
    result = run_evroute(["run", str(config)], folder)
    assert result.returncode == 1, result.stderr.decode()
    return result.stderr.decode()


def test_tls_with_a_client_certificate_publishes_and_reads(
    tmp_path: Path, tls_server: NatsServer
) -> None:
    connection = (
        f"url: tls://127.0.0.1:{tls_server.port}\n"
        "              tls: {ca: certs/ca.pem, cert: certs/client.pem, key: certs/client.key}"
    )
    stats = publish_then_route(tmp_path, connection, {})
    assert stats["inputs"]["bus"]["acked"] == EVENTS


def test_without_its_client_certificate_the_tls_server_refuses_clearly(
    tmp_path: Path, tls_server: NatsServer
) -> None:
    url = f"tls://127.0.0.1:{tls_server.port}"
    stderr = refusal(tmp_path, f'url: "{url}", tls: {{ca: certs/ca.pem}}')
    assert f"cannot connect to NATS at {url}" in stderr


def test_user_and_password_come_from_the_environment(
    tmp_path: Path, password_server: NatsServer
) -> None:
    connection = (
        f"url: nats://127.0.0.1:{password_server.port}\n"
        "              user: ${NATS_USER}\n"
        "              password: ${NATS_PASSWORD}"
    )
    stats = publish_then_route(
        tmp_path, connection, {"NATS_USER": "router", "NATS_PASSWORD": "s3cret"}
    )
    assert stats["inputs"]["bus"]["pulled"] == EVENTS


def test_a_wrong_password_is_a_clear_error_that_never_shows_it(
    tmp_path: Path, password_server: NatsServer
) -> None:
    url = f"nats://router:wrong-one@127.0.0.1:{password_server.port}"
    stderr = refusal(tmp_path, f'url: "{url}"')
    assert "cannot connect to NATS at nats://router:***@127.0.0.1" in stderr
    assert "authorization violation" in stderr.lower()
    assert "wrong-one" not in stderr


def test_a_credentials_file_publishes_and_reads(
    tmp_path: Path, operator_server: NatsServer
) -> None:
    connection = f"url: nats://127.0.0.1:{operator_server.port}\n              creds: router.creds"
    stats = publish_then_route(tmp_path, connection, {})
    assert stats["inputs"]["bus"]["acked"] == EVENTS


def test_without_credentials_the_operator_server_refuses_clearly(
    tmp_path: Path, operator_server: NatsServer
) -> None:
    stderr = refusal(tmp_path, f'url: "nats://127.0.0.1:{operator_server.port}"')
    assert "authorization violation" in stderr


def test_a_tls_problem_names_the_input_once(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    stderr = refusal(tmp_path, "url: nats://127.0.0.1:4222, tls: {ca: ca.pem}")
    assert "cannot load the TLS files" in stderr, stderr
    assert "bus: bus:" not in stderr, stderr
