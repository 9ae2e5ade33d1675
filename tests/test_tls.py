"""``livehub serve --tls-cert --tls-key``: HTTPS served directly, as a real process."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from processes import START_TIMEOUT, ProcessGroup, ServerProcess, run_livehub_async
from support import ADMIN_KEY, SECRET, free_port


def self_signed(directory: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / f"{name}.crt"
    key_path = directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def get(url: str, context: ssl.SSLContext | None, timeout: float = 2.0) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, None


def wait_https(server: ServerProcess, context: ssl.SSLContext) -> tuple[int, Any]:
    """GET https://127.0.0.1:PORT/healthz, verified against ``context``, until it answers."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        assert server.alive(), f"livehub exited early\n{server.output()}"
        try:
            return get(f"https://127.0.0.1:{server.port}/healthz", context)
        except (OSError, urllib.error.URLError):
            assert time.monotonic() < deadline, f"no HTTPS answer\n{server.output()}"
            time.sleep(0.05)


def serve_args(port: int, data: Path, *extra: str) -> list[str]:
    return [
        "serve",
        *("--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data)),
        *("--secret", SECRET, "--admin-key", ADMIN_KEY),
        *extra,
    ]


def test_serve_speaks_https_with_the_given_certificate(procs: ProcessGroup, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path / "tls")
    port = free_port()
    server = procs.launch(
        serve_args(port, tmp_path / "data", "--tls-cert", str(cert), "--tls-key", str(key)),
        port=port,
    )
    trusting = ssl.create_default_context(cafile=str(cert))
    status, body = wait_https(server, trusting)
    assert status == 200, body
    assert json.loads(body)["ok"] is True
    base = f"https://127.0.0.1:{port}"
    assert f"livehub serving on {base}" in server.stdout().splitlines(), server.output()
    # the demo links and the WHIP URL use https too
    assert f"  WHIP URL: {base}/whip/demo" in server.stdout().splitlines(), server.output()
    status, _ = get(f"{base}/studio/demo", trusting)
    assert status == 200

    # a client that does not trust the certificate is refused; plain HTTP gets no page
    strict = ssl.create_default_context()
    try:
        get(f"{base}/healthz", strict)
    except urllib.error.URLError as exc:
        assert isinstance(exc.reason, ssl.SSLCertVerificationError), exc
    else:
        raise AssertionError("an untrusted certificate was accepted")
    try:
        status, _ = get(f"http://127.0.0.1:{port}/healthz", None)
    except OSError:
        status = 0
    assert status != 200
    assert server.alive()


async def test_tls_flags_that_cannot_work_are_usage_errors(tmp_path: Path) -> None:
    """One of the two flags alone, a missing file, a key of another certificate, or the
    two swapped: exit 2 with the reason, before anything is created."""
    cert, key = self_signed(tmp_path / "tls")
    other_cert, _ = self_signed(tmp_path / "tls", "other")
    port = free_port()
    together = "--tls-cert and --tls-key"
    unusable = "--tls-cert/--tls-key"
    cases: list[tuple[list[str], dict[str, str], str]] = [
        (["--tls-cert", str(cert)], {}, together),
        (["--tls-key", str(key)], {}, together),
        ([], {"LIVEHUB_TLS_CERT": str(cert)}, together),
        (["--tls-cert", str(tmp_path / "missing.crt"), "--tls-key", str(key)], {}, unusable),
        (["--tls-cert", str(other_cert), "--tls-key", str(key)], {}, unusable),
        (["--tls-cert", str(key), "--tls-key", str(cert)], {}, unusable),
    ]
    results = await asyncio.gather(
        *(
            run_livehub_async(*serve_args(port, tmp_path / "data", *extra), env=env)
            for extra, env, _ in cases
        )
    )
    for (extra, env, complaint), done in zip(cases, results, strict=True):
        assert done.returncode == 2, (extra, env, done.stderr)
        assert complaint in done.stderr and "usage: livehub" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "data" / "livehub.db").exists()
