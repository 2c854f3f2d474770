"""Webhook delivery against real loopback receivers (HTTP and HTTPS), with host names answered
by a resolver the test controls (no real DNS): the delivery connects to the address it vetted,
keeps the host name for the Host header and the TLS certificate check, re-vets at every attempt
(a name re-pointed at an internal address is refused) and never follows a redirect."""

from __future__ import annotations

import datetime
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mouthpiece.service import webhooks
from mouthpiece.service.errors import ApiError
from mouthpiece.service.submission import check_webhook_target

HOST = "hooks.example.test"
PUBLIC = "93.184.216.34"


class Resolver:
    """Answers names from a script, one answer per call (the last one repeats), and logs calls."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers, self.calls = list(answers), []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if host != HOST:
            raise OSError(f"unknown host {host}")
        return self.answers[min(len(self.calls), len(self.answers)) - 1]


class Receiver:
    """A loopback HTTP(S) server that records each POST (Host header, path, TLS server name)
    and answers with `codes` in turn (the last one repeats)."""

    def __init__(self, *codes: int, tls: ssl.SSLContext | None = None) -> None:
        self.received: list[dict] = []
        self.server_names: list[str | None] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append({"host": self.headers["Host"], "path": self.path, "body": body})
                code = codes[min(len(receiver.received), len(codes)) - 1]
                self.send_response(code)
                self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver(200)
    yield server
    server.close()


def test_delivery_goes_to_the_vetted_address_with_the_original_host(receiver):
    resolve = Resolver(["127.0.0.1"])
    url = f"http://{HOST}:{receiver.port}/hook?job=1"
    assert webhooks.deliver(url, b'{"ok":1}', "sha256=x", allow_private=True, resolve=resolve)
    assert receiver.received == [{"host": f"{HOST}:{receiver.port}", "path": "/hook?job=1", "body": b'{"ok":1}'}]
    assert resolve.calls == [(HOST, receiver.port)]  # resolved once, by the check; the client did not


def test_a_name_rebound_to_loopback_after_submit_is_never_called(receiver):
    """DNS rebinding: public when the API checks it, loopback when the worker delivers."""
    resolve = Resolver([PUBLIC], ["127.0.0.1"])
    url = f"http://{HOST}:{receiver.port}/hook"
    check_webhook_target(url, False, resolve)  # accepted at submit
    assert not webhooks.deliver(url, b"{}", "sha256=x", resolve=resolve, first_backoff_s=0.01)
    assert receiver.received == [] and len(resolve.calls) == 2


def test_each_attempt_vets_again_and_a_mixed_answer_is_refused():
    flaky = Receiver(503, 200)
    try:
        resolve = Resolver(["127.0.0.1"], ["127.0.0.1"], ["10.0.0.9"])
        url = f"http://{HOST}:{flaky.port}/hook"
        assert webhooks.deliver(url, b"{}", "sha256=x", allow_private=True, resolve=resolve, first_backoff_s=0.01)
        assert len(flaky.received) == 2 and len(resolve.calls) == 2
    finally:
        flaky.close()
    for answer in ([PUBLIC, "127.0.0.1"], ["169.254.169.254"], ["::1"], []):
        with pytest.raises(ApiError) as refused:
            check_webhook_target(f"https://{HOST}/hook", False, Resolver(answer))
        assert refused.value.code == "invalid_webhook"
    assert webhooks.vet(f"https://{HOST}/h", resolve=Resolver([PUBLIC])).pinned_url == f"https://{PUBLIC}:443/h"
    assert webhooks.vet(f"http://{HOST}/", allow_private=True,
                        resolve=Resolver(["::1"])).pinned_url == "http://[::1]:80/"


def test_redirects_are_failed_deliveries():
    mover = Receiver(302)
    try:
        url = f"http://{HOST}:{mover.port}/hook"
        assert not webhooks.deliver(url, b"{}", "sha256=x", allow_private=True, resolve=Resolver(["127.0.0.1"]),
                                    first_backoff_s=0.01)
    finally:
        mover.close()
    assert len(mover.received) == 1  # one try, and the Location was not followed


def _certificate(name: str) -> tuple[bytes, bytes]:
    """A self-signed certificate for `name` → (certificate PEM, private key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


@pytest.mark.parametrize("cert_name, delivered", [(HOST, True), ("other.example.test", False)])
def test_https_delivery_sends_the_host_name_and_checks_the_certificate_for_it(tmp_path, cert_name, delivered):
    cert_pem, key_pem = _certificate(cert_name)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    secure = Receiver(200, tls=server_tls)
    try:
        trust = ssl.create_default_context(cadata=cert_pem.decode())
        url = f"https://{HOST}:{secure.port}/hook"
        result = webhooks.deliver(url, b"{}", "sha256=x", allow_private=True, resolve=Resolver(["127.0.0.1"]),
                                  verify=trust, attempts=1)
    finally:
        secure.close()
    assert result is delivered
    assert secure.server_names and set(secure.server_names) == {HOST}  # SNI: the name, not the IP
    assert len(secure.received) == (1 if delivered else 0)  # a certificate for another name: nothing sent
