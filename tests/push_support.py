"""A local Web Push service for the tests: it takes the POST a push service would, checks the
VAPID signature with the server's public key and decrypts the body (RFC 8291, aes128gcm) with
the private key of a device made in the test, as a browser would."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from py_vapid import Vapid


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def vapid_pair() -> tuple[str, str]:
    """A VAPID key pair made by py_vapid: (public point, private DER), both base64url."""
    vapid = Vapid()
    vapid.generate_keys()
    public = vapid.public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    private = vapid.private_key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    return b64url(public), b64url(private)


@dataclass
class Device:
    """A browser's side of a subscription: the key pair and auth secret it keeps."""

    endpoint: str
    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    @property
    def p256dh(self) -> str:
        point = self.private_key.public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint
        )
        return b64url(point)

    def subscription(self) -> dict[str, Any]:
        """What PushSubscription.toJSON() gives in a browser."""
        return {
            "endpoint": self.endpoint,
            "keys": {"p256dh": self.p256dh, "auth": b64url(self.auth)},
        }


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    message: dict[str, Any]


class PushService:
    """Answers `status` (201 by default); a 201 means the body decrypted and the VAPID token
    verified, and what it said is in `received`. A message it cannot decrypt or verify is
    answered 400 and recorded in `errors`."""

    def __init__(self, vapid_public: str, port: int = 0) -> None:
        self.vapid_public = vapid_public
        self.devices: dict[str, Device] = {}
        self.received: list[Received] = []
        self.errors: list[str] = []
        self.status = 201
        self._start(port)

    def device(self, name: str) -> Device:
        device = Device(f"{self.origin}/push/{name}")
        self.devices[f"/push/{name}"] = device
        return device

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def restart(self) -> None:
        """Back on the same port, as a push service that comes back up."""
        self._start(self.port)

    def _start(self, port: int) -> None:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if service.status != 201:
                    self.send_response(service.status)
                    self.end_headers()
                    self.wfile.write(b"push service trouble")
                    return
                try:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    message = service.open(self.path, headers, body)
                except Exception as exc:  # recorded for the test to show
                    service.errors.append(f"{type(exc).__name__}: {exc}")
                    self.send_response(400)
                    self.end_headers()
                    self.wfile.write(service.errors[-1].encode())
                    return
                service.received.append(Received(self.path, headers, message))
                self.send_response(201)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def open(self, path: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        self.verify_vapid(headers["authorization"])
        assert headers["content-encoding"] == "aes128gcm"
        device = self.devices[path]
        plain = http_ece.decrypt(
            body, private_key=device.private_key, auth_secret=device.auth, version="aes128gcm"
        )
        return json.loads(plain)

    def verify_vapid(self, authorization: str) -> None:
        """RFC 8292: `vapid t=<JWT>, k=<public key>`, the JWT signed ES256 by that key, for
        this origin, not expired."""
        scheme, _, params = authorization.partition(" ")
        assert scheme == "vapid", authorization
        fields = dict(part.strip().split("=", 1) for part in params.split(","))
        assert fields["k"] == self.vapid_public, "signed with another key"
        head, claims, signature = fields["t"].split(".")
        raw = unb64url(signature)
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        public = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), unb64url(self.vapid_public)
        )
        try:
            public.verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise AssertionError("the VAPID signature does not verify") from None
        data = json.loads(unb64url(claims))
        assert data["aud"] == self.origin, data
        assert data["sub"].startswith("mailto:"), data
        assert data["exp"] > time.time(), data
