"""Recomputes the message log's hash chain from a SQLite store, from the
README's description alone ("Message log"), independent of the gateway's Go
code: for TestPythonVerifiesLogChain, and for an auditor.

Usage: python3 logchain.py STORE.db
Prints {"entries": N, "broken": 0} for an intact chain, or the first broken
entry: {"entries": N, "broken": SEQ, "reason": "..."}.
"""
import hashlib
import json
import sqlite3
import struct
import sys

FIELDS = ("prev_hash, seq, correlation_id, partner_id, received_at, route, content_type, body, signature, "
          "verification, status, outcome, problem_type, source_key, record_id, payload_sha256, canonical, receipt")


def encode(value):
    """A field as hashed: its bytes (text in UTF-8, a number in decimal, NULL
    as nothing) after their length, 8 bytes big-endian."""
    if value is None:
        b = b""
    elif isinstance(value, bytes):
        b = value
    elif isinstance(value, int):
        b = str(value).encode()
    else:
        b = value.encode("utf-8")
    return struct.pack(">Q", len(b)) + b


def verify(path):
    db = sqlite3.connect("file:" + path + "?mode=ro", uri=True)
    prev, expect, n = "", 1, 0
    for row in db.execute("SELECT hash, " + FIELDS + " FROM message_log ORDER BY seq"):
        stored, fields = row[0], row[1:]
        prev_hash, seq = fields[0], fields[1]
        n += 1
        if seq != expect:
            return {"entries": n, "broken": expect, "reason": "missing"}
        if prev_hash != prev:
            return {"entries": n, "broken": seq, "reason": "prev_hash"}
        if hashlib.sha256(b"".join(encode(v) for v in fields)).hexdigest() != stored:
            return {"entries": n, "broken": seq, "reason": "hash"}
        prev, expect = stored, expect + 1
    return {"entries": n, "broken": 0}


print(json.dumps(verify(sys.argv[1])))
