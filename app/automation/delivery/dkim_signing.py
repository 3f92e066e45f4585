"""DKIM: keys for sending domains, the DNS record to publish, and signing.

Signing is dkimpy's (canonicalization, the header, the hash). dkimpy does
the RSA step itself in Python big integers, about 4 ms a message for a
2048-bit key (30 ms on a loaded machine): far too slow for a dispatcher
sending a thousand e-mails a second. So the one RSA step is handed to
OpenSSL (``cryptography``) for keys loaded through :func:`signer`;
dkimpy still builds and checks everything else, and its own verifier
checks our signatures in the tests. Parsed keys are cached by their PEM.
A signature now costs about 0.27 ms of OpenSSL (which releases the GIL)
and 0.1 ms of dkimpy's Python (tests/delivery/test_dkim_signing.py keeps
it dkimpy's own signature, byte for byte).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from functools import lru_cache

import dkim
import dkim.util
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

SIGNED_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"mime-version",
    b"content-type",
)
MIN_BITS = 1024

_log = dkim.util.get_default_logger()  # what dkim.sign would take per call
_openssl_keys: dict[int, rsa.RSAPrivateKey] = {}
_lock = threading.Lock()
_python_sign = dkim.RSASSA_PKCS1_v1_5_sign


def _sign_digest(hash_through, private_key):
    """dkimpy's RSA step, done by OpenSSL for the keys we loaded (the
    same PKCS#1 v1.5 signature over the same SHA-256 digest)."""
    key = _openssl_keys.get(private_key.get("modulus"))
    if key is None or getattr(hash_through, "name", "") != "sha256":
        return _python_sign(hash_through, private_key)
    digest = hash_through.digest()
    return key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


dkim.RSASSA_PKCS1_v1_5_sign = _sign_digest
# dkimpy parses the PEM (ASN.1, in Python) on every message: once per key.
dkim.parse_pem_private_key = lru_cache(maxsize=256)(dkim.parse_pem_private_key)


class KeyError_(ValueError):
    """A private key that cannot be used for DKIM."""


def generate_key(bits: int = 2048) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


@lru_cache(maxsize=256)
def _load(pem: str) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise KeyError_("not a PEM private key (-----BEGIN PRIVATE KEY----- ...)") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyError_("must be an RSA private key")
    if key.key_size < MIN_BITS:
        raise KeyError_(f"an RSA key of at least {MIN_BITS} bits")
    return key


def normalize_key(pem: str) -> str:
    """An uploaded key as stored (PKCS#1 PEM), or KeyError_."""
    key = _load((pem or "").strip() + "\n")
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def public_record(pem: str) -> str:
    """The TXT value to publish: ``v=DKIM1; k=rsa; p=<public key>``."""
    public = (
        _load(pem)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"


def record_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"


@lru_cache(maxsize=256)
def signer(selector: str, domain: str, pem: str) -> Callable[[bytes], bytes]:
    """A function that returns a message with its DKIM-Signature header
    first (relaxed/simple, rsa-sha256: the body is ours, sent as written)."""
    key = _load(pem)
    with _lock:
        _openssl_keys[key.private_numbers().public_numbers.n] = key
    selector_b, domain_b, pem_b = selector.encode(), domain.encode(), pem.encode()

    def sign(message: bytes) -> bytes:
        # dkimpy parses the header block; the body it is given as written
        # (mime.build_message: CRLF lines already), so the whole message
        # is not split into lines and joined again on every signature.
        head, blank, body = message.partition(b"\r\n\r\n")
        signature = dkim.DKIM(head + blank, logger=_log)
        if blank:
            signature.body = body
        header = signature.sign(
            selector_b,
            domain_b,
            pem_b,
            canonicalize=(b"relaxed", b"simple"),
            include_headers=SIGNED_HEADERS,
        )
        return header + message

    return sign
