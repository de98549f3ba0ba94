"""VAPID key pairs for Web Push, in the forms the settings take. Imports no model, so the
settings can use it for `make run`'s development pair."""

from __future__ import annotations

import base64
import json
import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)


def new_keys() -> tuple[str, str]:
    """A fresh pair: the public key as the base64url uncompressed point browsers want, the
    private key as base64url DER (PKCS #8)."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    private = key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    return _b64url(public), _b64url(private)


def development_keys(path: Path) -> tuple[str, str]:
    """The pair kept in `path`, made on first use. The web process and the worker start
    together and must sign with one pair: the file is linked into place only if absent, so
    the first to get there wins and the other reads its pair."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        public, private = new_keys()
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as draft:
            json.dump({"public": public, "private": private}, draft)
        try:
            os.link(draft.name, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(draft.name)
    pair = json.loads(path.read_text())
    return pair["public"], pair["private"]


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
