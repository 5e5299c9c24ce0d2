#!/usr/bin/env python3
"""An independent verifier of Airlock's audit log (format 2).

Written from docs/audit-format.md, not from the Rust code, so that the
format is defined by two implementations. It needs the standard library
and the `cryptography` package (Ed25519); format-1 records (keyed BLAKE3,
written before format 2) are reported as not checked unless the `blake3`
package is installed and --key-file is given.

    python3 tools/audit_verify.py var/audit --pubkey HEX
    python3 tools/audit_verify.py --export siem.jsonl --pubkey HEX

Exit codes are those of `airlock audit verify`: 0 intact and vouched for,
10 edited, 11 deleted, 12 inserted, 13 reordered, 14 truncated, 15 wrong
chain key, 16 bad signature, 17 unreadable, 18 bad key rotation,
19 session mismatch, 20 not everything could be checked, 2 on error.
"""

import argparse
import hashlib
import json
import os
import re
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

RECORD_DOMAIN = b"airlock-audit-record-v2\n"
SESSION_DOMAIN = b"airlock-audit-session-v2\n"
CHECKPOINT_DOMAIN = b"airlock-audit-checkpoint-v2\n"
ROTATION_DOMAIN = b"airlock-audit-key-rotation-v2\n"
GENESIS = bytes(32)

EXIT = {
    "edited": 10,
    "deleted": 11,
    "inserted": 12,
    "reordered": 13,
    "truncated": 14,
    "wrong-key": 15,
    "bad-signature": 16,
    "unreadable": 17,
    "bad-rotation": 18,
    "session-mismatch": 19,
}
NOT_VOUCHED = 20
HEX = re.compile(r"\A[0-9a-fA-F]*\Z")


class Broken(Exception):
    def __init__(self, problem, seq=None):
        super().__init__(problem)
        self.problem = problem
        self.seq = seq


def _not_json(name):
    raise ValueError(f"{name} is not JSON")


def parse(line):
    """The record a line holds, or None: strict JSON (no NaN, no lone
    surrogates), as serde_json reads it."""
    try:
        record = json.loads(line.decode("utf-8"), parse_constant=_not_json)
        canonical(record if isinstance(record, dict) else {})
    except (UnicodeDecodeError, UnicodeEncodeError, ValueError):
        return None
    return record


def unhex(value, n):
    """Exactly n bytes as 2n hex digits, or None."""
    if not isinstance(value, str) or len(value) != 2 * n or not HEX.match(value):
        return None
    return bytes.fromhex(value)


def as_u64(value):
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value < 2**64 else None


def canonical(record, leave_out=("hash",)):
    """Compact JSON, keys sorted, non-ASCII as UTF-8: serde_json's output."""
    rest = {k: v for k, v in record.items() if k not in leave_out}
    return json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def signed_by(key, domain, message_record, record):
    signature = unhex(record.get("signature"), 64)
    if signature is None or key is None:
        return False
    message = domain + canonical(message_record, ("hash", "signature"))
    return verify_raw(key, message, signature)


def verify_raw(key, message, signature):
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(signature, message)
        return True
    except (InvalidSignature, ValueError):
        return False


def keyed_hash(key, prev, data):
    import blake3  # only for format-1 records, and only when asked to

    return blake3.blake3(prev + data, key=key).digest()


class Verifier:
    def __init__(self, pinned, chain_key, export):
        self.pinned = pinned
        self.chain_key = chain_key
        self.export = export
        self.prev = GENESIS
        self.last_seq = 0
        self.seen_format2 = False
        self.keyed_verified = False
        self.key = pinned
        self.keys = [[pinned, None, 0]] if pinned else []
        self.sessions = {}
        self.run_seen = False
        self.records = 0
        self.checkpoints = 0
        self.rotations = 0
        self.keyed_records = 0
        self.first_seq = None
        self.signed_through = 0
        self.last_final = False
        self.session_roots = 0
        self.sessions_proved = 0

    def key_in_force(self, named):
        if self.key is None:
            self.key = named
            if named is not None:
                self.keys.append([named, None, 0])
        return self.key

    def record(self, line, rest):
        record = parse(line)
        if not isinstance(record, dict):
            raise Broken("unreadable")
        seq = as_u64(record.get("seq"))
        rec_prev = unhex(record.get("prev"), 32)
        rec_hash = unhex(record.get("hash"), 32)
        version = as_u64(record.get("v"))
        if seq is None or rec_prev is None or rec_hash is None or version is None:
            raise Broken("unreadable")
        body = canonical(record)
        if version == 2:
            if sha256(RECORD_DOMAIN, rec_prev, body) != rec_hash:
                raise Broken("edited", seq)
            self.seen_format2 = True
        elif version == 1:
            if self.seen_format2:
                raise Broken("edited", seq)
            self.keyed_records += 1
            if self.chain_key is not None:
                if keyed_hash(self.chain_key, rec_prev, body) != rec_hash:
                    raise Broken("edited" if self.keyed_verified else "wrong-key", seq)
                self.keyed_verified = True
        else:
            raise Broken("unreadable", seq)
        first = self.first_seq is None
        if first and self.export:
            self.prev = rec_prev
            self.last_seq = max(seq - 1, 0)
        if seq <= self.last_seq and self.last_seq > 0:
            raise Broken("inserted", seq)
        if seq > self.last_seq + 1:
            wanted = self.last_seq + 1
            problem = "deleted"
            lines, start = rest
            for later in lines[start:]:
                r = parse(later)
                if isinstance(r, dict) and as_u64(r.get("seq")) == wanted:
                    problem = "reordered"
                    break
            raise Broken(problem, seq)
        if rec_prev != self.prev:
            raise Broken("inserted", seq)
        kind = record.get("kind")
        kind = kind if isinstance(kind, str) else ""
        is_final = False
        if kind == "checkpoint":
            self.checkpoints += 1
            key = self.key_in_force(unhex(record.get("public_key"), 32))
            if version == 2:
                genuine = signed_by(key, CHECKPOINT_DOMAIN, record, record)
            else:
                signed_seq = as_u64(record.get("signed_seq"))
                signed_hash = unhex(record.get("signed_hash"), 32)
                signature = unhex(record.get("signature"), 64)
                genuine = (
                    key is not None
                    and signed_seq is not None
                    and signed_hash is not None
                    and signature is not None
                    and verify_raw(
                        key,
                        b"airlock-audit-checkpoint-v1" + signed_seq.to_bytes(8, "big") + signed_hash,
                        signature,
                    )
                    and signed_seq == self.last_seq
                    and signed_hash == self.prev
                )
            if not genuine:
                raise Broken("bad-signature", seq)
            if self.keys:
                self.keys[-1][2] += 1
            if version == 2:
                self.check_sessions(record, seq)
            self.signed_through = seq
            is_final = record.get("final") is True
        elif kind == "key_rotation":
            key = self.key_in_force(unhex(record.get("public_key"), 32))
            new_key = unhex(record.get("new_public_key"), 32)
            genuine = (
                key is not None
                and new_key is not None
                and signed_by(key, ROTATION_DOMAIN, record, record)
            )
            if not genuine or version != 2:
                raise Broken("bad-rotation", seq)
            self.key = new_key
            self.rotations += 1
            self.keys.append([new_key, seq, 0])
        if kind == "writer_start":
            self.sessions = {}
            self.run_seen = True
        session = record.get("session")
        if isinstance(session, str):
            s = self.sessions.setdefault(session, {"records": 0, "root": GENESIS, "whole": False})
            if s["records"] == 0 and (kind == "session_start" or self.run_seen):
                s["whole"] = True
            s["records"] += 1
            s["root"] = sha256(SESSION_DOMAIN, s["root"], rec_hash)
        if first:
            self.first_seq = seq
        self.last_final = is_final
        self.prev = rec_hash
        self.last_seq = seq
        self.records += 1

    def check_sessions(self, record, seq):
        signed = record.get("sessions")
        if not isinstance(signed, dict):
            raise Broken("session-mismatch", seq)
        for sid, entry in signed.items():
            entry = entry if isinstance(entry, dict) else {}
            records = as_u64(entry.get("records"))
            root = unhex(entry.get("root"), 32)
            ended = entry.get("ended") is True
            s = self.sessions.get(sid)
            if s is None:
                if self.export:
                    continue
                raise Broken("session-mismatch", seq)
            if self.export and not s["whole"]:
                continue
            if records != s["records"] or root != s["root"]:
                raise Broken("session-mismatch", seq)
            self.session_roots += 1
            if ended:
                self.sessions_proved += 1
                del self.sessions[sid]


def lines_of(path):
    with open(path, "rb") as f:
        data = f.read()
    parts = data.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    return parts


def segments(directory):
    found = []
    for name in os.listdir(directory):
        stem = name[: -len(".jsonl")] if name.endswith(".jsonl") else None
        if stem and re.fullmatch(r"[0-9]+", stem) and int(stem) < 2**64:
            found.append((int(stem), os.path.join(directory, name)))
    return [p for _, p in sorted(found)]


def writer_running(directory):
    try:
        with open(os.path.join(directory, "writer.pid")) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return False
    return os.path.exists(f"/proc/{pid}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", help="the log's directory, or with --export an export file")
    parser.add_argument("--export", action="store_true", help="the target is an `audit export` file")
    parser.add_argument("--pubkey", help="the trusted Ed25519 public key (64 hex digits)")
    parser.add_argument("--key-file", help="the chain key of format-1 records (needs `blake3`)")
    parser.add_argument(
        "--self-check", action="store_true", help="without a trusted key, exit 0 if self-consistent"
    )
    args = parser.parse_args()
    pinned = None
    if args.pubkey is not None:
        pinned = unhex(args.pubkey.strip(), 32)
        if pinned is None:
            print("error: --pubkey: not an Ed25519 public key (64 hex digits expected)", file=sys.stderr)
            return 2
    chain_key = None
    if args.key_file:
        try:
            with open(args.key_file) as f:
                chain_key = unhex(f.read().strip(), 32)
            import blake3  # noqa: F401
        except (OSError, ImportError) as e:
            print(f"error: --key-file: {e}", file=sys.stderr)
            return 2
        if chain_key is None:
            print(f"error: `{args.key_file}`: not a key (64 hex digits expected)", file=sys.stderr)
            return 2
    try:
        files = [args.target] if args.export else segments(args.target)
    except OSError as e:
        print(f"error: cannot read `{args.target}`: {e}", file=sys.stderr)
        return 2
    v = Verifier(pinned, chain_key, args.export)
    broken = None
    for path in files:
        try:
            lines = lines_of(path)
        except OSError as e:
            print(f"error: cannot read `{path}`: {e}", file=sys.stderr)
            return 2
        for i, line in enumerate(lines):
            try:
                v.record(line, (lines, i + 1))
            except Broken as b:
                broken = (path, i + 1, b)
                break
        if broken:
            break
    is_open = not args.export and writer_running(args.target)
    if broken is None and not args.export and v.records > 0 and not is_open:
        if not (v.signed_through == v.last_seq and v.last_final):
            broken = (files[-1] if files else args.target, 0, Broken("truncated", v.last_seq))
    print(f"{'export' if args.export else 'log'}: {args.target}")
    if v.first_seq is not None:
        print(f"  records: {v.records} (seq {v.first_seq} to {v.last_seq})")
    print(f"  checkpoints: {v.checkpoints}, key rotations: {v.rotations}")
    for key, introduced, count in v.keys:
        origin = f"introduced at seq {introduced}" if introduced else (
            "pinned" if pinned else "named by the log itself (not pinned)")
        print(f"  key {key.hex()}: {origin}; signed {count} checkpoints")
    print(f"  sessions: {v.session_roots} transcript roots matched; {v.sessions_proved} proved complete")
    if broken is not None:
        path, line, b = broken
        seq = f" (seq {b.seq})" if b.seq is not None else ""
        print(f"BROKEN at {path} line {line}{seq}: {b.problem}")
        return EXIT[b.problem]
    failing = False
    if pinned is None:
        print("NOT CHECKED: no trusted public key was given (--pubkey)")
        failing |= not args.self_check
    if v.keyed_records and chain_key is None:
        print(f"NOT CHECKED: {v.keyed_records} format-1 records (keyed hashes, no --key-file)")
        failing = True
    after = max(v.signed_through, (v.first_seq or 1) - 1)
    if v.records and after < v.last_seq:
        print(f"NOT CHECKED: the last {v.last_seq - after} records are covered by no checkpoint")
        failing |= not is_open
    if failing:
        print("NOT VOUCHED FOR")
        return NOT_VOUCHED
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
