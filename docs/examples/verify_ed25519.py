# Verify a labhook message signed with Ed25519 (Standard Webhooks v1a)
# using the cryptography package. public_key is the config's whpk_ key;
# raw_body is the request body as received (bytes), before any JSON
# parsing. Raises unless a v1a signature matches.
import base64
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def verify_labhook(public_key: str, headers, raw_body: bytes) -> None:
    msg_id = headers["webhook-id"]
    ts = headers["webhook-timestamp"]
    sigs = headers["webhook-signature"]
    if not ts.isdigit() or abs(time.time() - int(ts)) > 300:
        raise ValueError("webhook-timestamp is more than five minutes away")
    if not public_key.startswith("whpk_"):
        raise ValueError("not a whpk_ public key")
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key[len("whpk_"):]))
    signed = f"{msg_id}.{ts}.".encode() + raw_body
    for s in sigs.split(" "):
        if s.startswith("v1a,"):
            try:
                key.verify(base64.b64decode(s[4:]), signed)
                return
            except (InvalidSignature, ValueError):
                continue
    raise ValueError("no matching signature")
