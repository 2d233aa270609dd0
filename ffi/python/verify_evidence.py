#!/usr/bin/env python3
"""Checks an Anjian evidence package (format `anjian-evidence/1`, docs/EVIDENCE.md) without
any Anjian code: only the Python standard library and the `cryptography` package.

    python3 verify_evidence.py PACKAGE.json [--server-key HEX]

It trusts no hash the package states. It recomputes every change hash from the change's
bytes (and checks the chunk's checksum), every key id from the key's bytes and every photo
hash from the photo's bytes, and then checks every device signature against the key of the
device that wrote the change (a supervisor's decision, which the server writes and signs
itself, against the server's key certified for the supervisor's server-side device), every
certificate, receipt and the package itself against the server's key, and that each
change's dependencies are in the package. Pass the server's
public key as published (`anjian-sync-server evidence key` prints it) with --server-key:
without it, the checks prove only that the package is consistent with the key it names.

Exit status 0 when every check passes, 1 when any fails (each failure is printed).
"""

import argparse
import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

FORMAT = "anjian-evidence/1"
CHANGE_CONTEXT = b"anjian change v1\n"
RECEIPT_CONTEXT = b"anjian receipt v1\n"
CERTIFICATE_CONTEXT = b"anjian certificate v1\n"
PACKAGE_CONTEXT = b"anjian evidence v1\n"
AUTOMERGE_MAGIC = bytes.fromhex("856f4a83")
# The name of a supervisor's server-side device: the server writes the supervisor's
# decisions under it and signs them with its own key.
SERVER_DEVICE_NAME = "监管网页 (server)"
CHANGE_CHUNK = 1


class Failure(Exception):
    """A check that did not pass; `code` names which (docs/EVIDENCE.md lists them)."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code


# --- keys and signatures ------------------------------------------------------------------

def key_id(algorithm, public_key):
    """The first 8 bytes of SHA-256(algorithm code, ":", public key bytes)."""
    return hashlib.sha256(algorithm.encode() + b":" + public_key).digest()[:8]


def verify(algorithm, public_key, message, signature):
    """Whether `signature` is the key's signature of `message` (False, never an exception,
    for a malformed key or signature)."""
    try:
        if algorithm == "ed25519":
            Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        elif algorithm == "p256":
            if len(signature) != 64:
                return False
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
            der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                                       int.from_bytes(signature[32:], "big"))
            key.verify(der, message, ec.ECDSA(hashes.SHA256()))
        else:
            return False
        return True
    except (InvalidSignature, ValueError):
        return False


# --- Automerge change chunks --------------------------------------------------------------

def uleb128(data, at):
    """An unsigned LEB128 number at `at`: (value, next position)."""
    value, shift = 0, 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("a LEB128 number runs past the end")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def read_change(chunk):
    """Checks one change chunk (magic, checksum, type, length, body) and returns its hash
    (SHA-256 over type, length and body), its dependencies and its actor (hex)."""
    if chunk[:4] != AUTOMERGE_MAGIC:
        raise Failure("change-format", "the chunk does not start with Automerge's magic bytes")
    checksum = chunk[4:8]
    if len(chunk) < 9 or chunk[8] != CHANGE_CHUNK:
        raise Failure("change-format", "the chunk is not an uncompressed change (type 1)")
    try:
        length, body_at = uleb128(chunk, 9)
    except ValueError as e:
        raise Failure("change-format", str(e)) from None
    if body_at + length != len(chunk):
        raise Failure("change-format", "the chunk's length does not match its bytes")
    digest = hashlib.sha256(chunk[8:]).digest()
    if digest[:4] != checksum:
        raise Failure("change-checksum", "the chunk's checksum is not its hash's first bytes")
    body = chunk[body_at:]
    try:
        count, at = uleb128(body, 0)
        deps = []
        for _ in range(count):
            if at + 32 > len(body):
                raise ValueError("a dependency runs past the end")
            deps.append(body[at:at + 32])
            at += 32
        actor_length, at = uleb128(body, at)
        if at + actor_length > len(body):
            raise ValueError("the actor runs past the end")
        actor = body[at:at + actor_length].hex()
    except ValueError as e:
        raise Failure("change-format", str(e)) from None
    return digest, deps, actor


# --- certificates (CBOR) ------------------------------------------------------------------

def cbor(data, at=0, depth=0):
    """The CBOR item at `at` (the kinds a certificate uses: integers, byte and text strings
    of definite length, arrays and maps): (value, next position)."""
    if depth > 8 or at >= len(data):
        raise ValueError("CBOR runs past the end or nests too deep")
    major, info = data[at] >> 5, data[at] & 0x1F
    at += 1
    if info < 24:
        argument = info
    elif info in (24, 25, 26, 27):
        size = 1 << (info - 24)
        if at + size > len(data):
            raise ValueError("CBOR runs past the end")
        argument = int.from_bytes(data[at:at + size], "big")
        at += size
    else:
        raise ValueError("indefinite or reserved CBOR lengths are not used")
    if major == 0:
        return argument, at
    if major == 1:
        return -1 - argument, at
    if major in (2, 3):
        if at + argument > len(data):
            raise ValueError("a CBOR string runs past the end")
        raw = data[at:at + argument]
        return (raw if major == 2 else raw.decode("utf-8")), at + argument
    if major == 4:
        items = []
        for _ in range(argument):
            item, at = cbor(data, at, depth + 1)
            items.append(item)
        return items, at
    if major == 5:
        result = {}
        for _ in range(argument):
            key, at = cbor(data, at, depth + 1)
            result[key], at = cbor(data, at, depth + 1)
        return result, at
    raise ValueError(f"CBOR major type {major} is not used")


def cbor_map(data):
    value, end = cbor(data)
    if not isinstance(value, dict) or end != len(data):
        raise ValueError("not one CBOR map")
    return value


# --- the package --------------------------------------------------------------------------

def canonical(value):
    """The package's canonical JSON: keys in ascending order, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def unhex(text, what):
    try:
        return bytes.fromhex(text)
    except (TypeError, ValueError):
        raise Failure("malformed", f"{what} is not hex") from None


def unbase64(text, what):
    try:
        return base64.b64decode(text, validate=True)
    except (TypeError, ValueError):
        raise Failure("malformed", f"{what} is not base64") from None


class Report:
    """What a verification found: failures (each with a code) and notes."""

    def __init__(self):
        self.failures = []
        self.notes = []
        self.changes = 0
        self.signed = 0
        self.server_signed = 0
        self.receipts = 0
        self.certificates = 0
        self.photos_checked = 0

    def fail(self, code, message):
        self.failures.append((code, message))

    @property
    def codes(self):
        return {code for code, _ in self.failures}

    @property
    def ok(self):
        return not self.failures


def verify_package(package, server_key=None):
    """Checks a package (the parsed JSON); `server_key` is the server's public key (bytes)
    as published, if the caller has it. Returns a Report."""
    report = Report()
    try:
        _verify(package, server_key, report)
    except Failure as failure:
        report.fail(failure.code, str(failure))
    except (KeyError, TypeError, AttributeError) as e:
        report.fail("malformed", f"the package lacks or misshapes a field ({e!r})")
    return report


def _verify(package, pinned, report):
    if package.get("format") != FORMAT:
        raise Failure("malformed", f"the format is {package.get('format')!r}, not {FORMAT}")
    server = package["server"]
    server_algorithm = server["algorithm"]
    server_key = unhex(server["publicKey"], "the server's key")
    server_id = key_id(server_algorithm, server_key)
    if pinned is not None and pinned != server_key:
        report.fail("server-key", "the package names another server key than the one given")

    # The package as the server signed it: everything but the signature itself.
    unsigned = {k: v for k, v in package.items() if k != "signature"}
    if not verify(server_algorithm, server_key, PACKAGE_CONTEXT + canonical(unsigned),
                  unhex(package.get("signature", ""), "the package's signature")):
        report.fail("package-signature", "the server's signature of the package does not verify")

    accounts = {a["username"]: a for a in package["accounts"]}

    # Devices, their keys (by recomputed key id) and certificates; the server-side devices
    # for which the server certified its own key.
    keys = {}
    devices = {}
    server_certified = set()
    for device in package["devices"]:
        actor = device["actor"]
        devices[actor] = device
        if device["account"] not in accounts:
            report.fail("device", f"device {actor} belongs to an account the package lacks")
        for key in device["keys"]:
            public = unhex(key["publicKey"], f"a key of device {actor}")
            kid = key_id(key["algorithm"], public)
            if kid in keys and keys[kid][0] != actor:
                report.fail("key", f"key {kid.hex()} is listed for two devices")
            keys[kid] = (actor, key["algorithm"], public)
        for encoded in device["certificates"]:
            fields = check_certificate(unbase64(encoded, "a certificate"), device, accounts,
                                       server_algorithm, server_key, server_id, report)
            if (fields is not None and is_server_side(device)
                    and (fields["algorithm"], fields["publicKey"]) == (server_algorithm, server_key)):
                server_certified.add(actor)

    # Changes: hashes from bytes, then signatures, receipts and the device each names.
    hashes = set()
    depended_on = set()
    for index, entry in enumerate(package["changes"]):
        report.changes += 1
        try:
            digest, deps, actor = read_change(unbase64(entry["bytes"], f"change {index}"))
        except Failure as failure:
            report.fail(failure.code, f"change {index}: {failure}")
            continue
        name = f"change {index} ({digest.hex()[:12]}…)"
        for dep in deps:
            if dep not in hashes:
                report.fail("dependency", f"{name} depends on {dep.hex()}, which is not before it")
            depended_on.add(dep)
        hashes.add(digest)

        device = devices.get(actor)
        signature = entry.get("signature")
        if signature is None:
            report.notes.append(f"{name} by device {actor} carries no device signature")
        elif unhex(signature["keyId"], f"{name}'s key id") == server_id:
            # Checked before the devices' keys: a device listing the server's public key
            # as its own does not make the server's signature its device's.
            report.signed += 1
            report.server_signed += 1
            check_server_signed(name, digest, actor, device, entry.get("receipt"),
                                signature, server_certified, server_algorithm, server_key,
                                report)
        else:
            report.signed += 1
            kid = unhex(signature["keyId"], f"{name}'s key id")
            if kid not in keys:
                report.fail("signature", f"{name} names key {kid.hex()}, which no device in the package has")
            else:
                owner, algorithm, public = keys[kid]
                if owner != actor:
                    report.fail("signature", f"{name} was written by {actor} but signed with a key of {owner}")
                if not verify(algorithm, public, CHANGE_CONTEXT + digest,
                              unhex(signature["signature"], f"{name}'s signature")):
                    report.fail("signature", f"{name}: the device signature does not verify")

        receipt = entry.get("receipt")
        if receipt is None:
            report.notes.append(f"{name} has no server receipt")
            continue
        if device is not None and receipt["author"] != device["account"]:
            report.fail("receipt", f"{name}: the receipt names author {receipt['author']}, "
                                   f"but device {actor} belongs to {device['account']}")
        if receipt.get("signature") is None:
            report.notes.append(f"{name}: its receipt is not signed (received before receipts were)")
            continue
        report.receipts += 1
        if unhex(receipt["issuer"], f"{name}'s receipt issuer") != server_id:
            report.fail("receipt", f"{name}: the receipt names another server key")
        message = (RECEIPT_CONTEXT + digest + actor.encode() + b"\n"
                   + receipt["receivedAt"].encode("utf-8"))
        if not verify(server_algorithm, server_key, message,
                      unhex(receipt["signature"], f"{name}'s receipt signature")):
            report.fail("receipt", f"{name}: the server's receipt does not verify")

    heads = sorted(h for h in hashes if h not in depended_on)
    stated = sorted(unhex(h, "a head") for h in package["heads"])
    if heads != stated:
        report.fail("heads", "the changes' heads are not the heads the package states")

    # Photos: each hash from its bytes, and each named by a change of the case.
    changes_bytes = [base64.b64decode(e["bytes"]) for e in package["changes"]
                     if isinstance(e.get("bytes"), str)]
    for photo in package["photos"]:
        sha256 = photo["sha256"]
        if not any(sha256.encode() in chunk for chunk in changes_bytes):
            report.fail("photo", f"photo {sha256} is named by no change of the case")
        if photo.get("bytes") is None:
            report.notes.append(f"photo {sha256} ({photo['kind']}) is not included")
            continue
        actual = hashlib.sha256(unbase64(photo["bytes"], f"photo {sha256}")).hexdigest()
        if actual != sha256:
            report.fail("photo", f"photo {sha256}: its bytes hash to {actual}")
        report.photos_checked += 1


def is_server_side(device):
    """Whether `device` is a supervisor's server-side device (by the name the server gives
    them, which no phone may sign in under)."""
    return device is not None and device["name"] == SERVER_DEVICE_NAME


def check_server_signed(name, digest, actor, device, receipt, signature, server_certified,
                        server_algorithm, server_key, report):
    """A change signed with the server's own key: valid exactly when the server wrote it
    for a supervisor, under the supervisor's server-side device, which holds the server's
    certificate for its key; the receipt names the device's account; and the server's
    signature verifies."""
    if not is_server_side(device):
        report.fail("signature", f"{name} is signed with the server's key, but device {actor} "
                                 "is not a supervisor's server-side device")
        return
    if actor not in server_certified:
        report.fail("signature", f"{name} is signed with the server's key, but the server "
                                 f"certified its key for device {actor} in no valid certificate")
    if receipt is None or receipt.get("author") != device["account"]:
        report.fail("signature", f"{name} is signed with the server's key, but its receipt does "
                                 f"not name the account of device {actor} ({device['account']})")
    if not verify(server_algorithm, server_key, CHANGE_CONTEXT + digest,
                  unhex(signature["signature"], f"{name}'s signature")):
        report.fail("signature", f"{name}: the server's signature does not verify")


def check_certificate(raw, device, accounts, server_algorithm, server_key, server_id, report):
    """A certificate of `device`: signed by the server, naming the device, one of its keys
    (for a server-side device, the server's own key) and its account as the package lists
    them. Returns its fields when every check passes, None otherwise."""
    report.certificates += 1
    before = len(report.failures)
    actor = device["actor"]
    try:
        outer = cbor_map(raw)
        body, signature = outer["body"], outer["signature"]
        fields = cbor_map(body)
    except (ValueError, KeyError, UnicodeDecodeError) as e:
        report.fail("certificate", f"a certificate of device {actor} cannot be read: {e}")
        return None
    if not verify(server_algorithm, server_key, CERTIFICATE_CONTEXT + body, signature):
        report.fail("certificate", f"a certificate of device {actor}: the server's signature does not verify")
    if fields.get("issuer") != server_id:
        report.fail("certificate", f"a certificate of device {actor} names another issuer")
    if fields.get("actor") != actor:
        report.fail("certificate", f"a certificate listed for device {actor} names device {fields.get('actor')}")
    listed = {(k["algorithm"], k["publicKey"]) for k in device["keys"]}
    if is_server_side(device):
        listed.add((server_algorithm, server_key.hex()))
    public = fields.get("publicKey")
    if not isinstance(public, bytes) or (fields.get("algorithm"), public.hex()) not in listed:
        report.fail("certificate", f"a certificate of device {actor} certifies a key the device does not list")
    account = accounts.get(device["account"], {})
    for field in ("name", "role", "district", "department"):
        if fields.get(field) != account.get(field):
            report.fail("certificate", f"a certificate of device {actor} says {field} "
                                       f"{fields.get(field)!r}, the package {account.get(field)!r}")
    if fields.get("user") != device["account"]:
        report.fail("certificate", f"a certificate of device {actor} names account {fields.get('user')!r}")
    return fields if len(report.failures) == before else None


def main(argv=None):
    parser = argparse.ArgumentParser(description="Checks an Anjian evidence package.")
    parser.add_argument("package", help="the package (JSON)")
    parser.add_argument("--server-key", help="the server's public key as published (hex)")
    args = parser.parse_args(argv)
    with open(args.package, "rb") as f:
        package = json.load(f)
    pinned = bytes.fromhex(args.server_key) if args.server_key else None
    report = verify_package(package, pinned)
    for note in report.notes:
        print(f"note: {note}")
    for code, message in report.failures:
        print(f"FAILED [{code}] {message}")
    print(f"{report.changes} changes ({report.signed} signed, {report.server_signed} of them by "
          f"the server for a supervisor; {report.receipts} signed receipts), "
          f"{report.certificates} certificates, {report.photos_checked} photos checked: "
          + ("every check passed" if report.ok else f"{len(report.failures)} checks failed"))
    if pinned is None:
        print("note: no --server-key given; compare the package's server key with the published one")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
