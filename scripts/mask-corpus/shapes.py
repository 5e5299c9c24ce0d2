#!/usr/bin/env python3
"""Writes the second evaluation corpus: the shapes values take in real
tables that the main corpus (generate.py) does not draw, each beside hard
negatives of the same shape.

    python3 scripts/mask-corpus/shapes.py --seed 11 \
        --out protocol-tests/corpus/masking-shapes.jsonl \
        --columns-out protocol-tests/corpus/masking-columns.jsonl

`masking-shapes.jsonl` has the cell format of masking.jsonl (see
generate.py); `shape` names the family a cell was drawn from
(`card_expiry`, `hash_scram`, `b64_std`, ...) so that mask_eval reports
recall per family. Families:

* cards with an expiry or cents glued on (`4111111111111111/12/27`,
  `…1111.00`), dotted (`4111.1111.1111.1111`), or glued to a label by
  `#`, `_`, `/`, `.`, `:`, `=` (`cc#4111…`, `user_4111…`);
* IBANs in lower case, grouped or not; SSNs glued to their label
  (`SSN#536-22-8714`, `ssn:536228714`); emails with plus tags and
  subdomains, and internationalised domains;
* password hashes and verifiers, kind `password_hash`: SCRAM-SHA-256,
  PostgreSQL md5, MySQL native and caching_sha2, bcrypt, argon2, scrypt,
  sha256/sha512-crypt, md5-crypt, apr1, Django PBKDF2, LDAP {SHA}/{SSHA}.
  Those the standard library can compute are real hashes of a random
  password (SCRAM, md5, MySQL native, PBKDF2, LDAP, scrypt); the others
  have their exact layout with random salt and hash characters, which is
  all a detector can check;
* values inside base64 (standard and URL-safe, padded or not) and hex: a
  sentence holding one value, encoded; the label is the whole run;
* national phone numbers after a context word in ten languages;
* hard negatives for each: 17-digit timestamps, dotted versions and
  IP-like numbers, Luhn-failing numbers glued to labels, order numbers,
  hex digests (sha256 in a checksum field, git SHAs, bare md5), base64 of
  random bytes and of text without values, dollar amounts and shell
  variables, phone-like invoice numbers.

`masking-columns.jsonl` holds result columns, one object each:
`{"id", "locale", "kind": "phone" | null, "negative": family | null,
"cells": [...]}`: columns of national phone numbers (formats the scanner
alone does not accept, such as `030 1234567` and `098765 43210`), and
columns of look-alikes (invoice numbers, zero-padded ids, dates, amounts,
times, postcodes, reference numbers) in which nothing may be masked.

The output depends only on the seed and the pinned packages of
requirements.txt; a rerun is byte-identical.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import string
import sys
from collections import Counter

import phonenumbers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate as g  # noqa: E402

CRYPT64 = "./" + string.digits + string.ascii_uppercase + string.ascii_lowercase
B64 = string.ascii_letters + string.digits + "+/"

# Context words for phone numbers, per language, and the regions whose
# national formats follow them.
PHONE_CONTEXT = [
    ("GB", ["Phone: {}", "Tel {}", "mobile {}", "call me on {}"]),
    ("DE", ["Telefon: {}", "Tel.: {}", "Handy {}", "Rufnummer {}"]),
    ("FR", ["téléphone : {}", "Tél. {}", "portable {}"]),
    ("IT", ["telefono {}", "cellulare: {}", "Tel. {}"]),
    ("ES", ["teléfono {}", "móvil: {}", "Tel. {}"]),
    ("NL", ["telefoon {}", "Tel: {}", "mobiel {}"]),
    ("BR", ["telefone {}", "celular: {}", "Tel. {}"]),
    ("IN", ["phone {}", "mobile no. {}", "Ph: {}"]),
    ("JP", ["電話 {}", "TEL {}", "携帯 {}"]),
    ("PL", ["telefon {}", "tel. {}", "komórka: {}"]),
]

COLUMN_REGIONS = ["GB", "DE", "FR", "IT", "ES", "NL", "BR", "IN", "PL", "SE"]


class Shapes:
    def __init__(self, seed: int):
        self.gen = g.Gen(seed)
        self.rng = self.gen.rng
        self.national_pool: dict[str, list[str]] = {}

    # ---- helpers ------------------------------------------------------------

    def chars(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def card_digits(self, length: int | None = None) -> str:
        while True:
            v = self.gen.card("en_US").text.replace(" ", "").replace("-", "")
            if length is None or len(v) == length:
                return v

    def luhn_failing(self, n: int) -> str:
        while True:
            d = self.gen.digits(n)
            if not g.luhn_ok(d) and not g.digit_kinds(d):
                return d

    def password(self) -> bytes:
        return self.chars(string.ascii_letters + string.digits + "!#%&", self.rng.randint(10, 20)).encode()

    def national(self, region: str) -> str:
        """A valid national-format number of `region`, varied from its
        example numbers."""
        pool = self.national_pool.setdefault(region, [])
        types = [phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE]
        while True:
            ex = phonenumbers.example_number_for_type(region, self.rng.choice(types))
            if ex is None:
                continue
            nsn = str(ex.national_number)
            tail = self.rng.randint(3, min(5, len(nsn) - 2))
            nsn = nsn[:-tail] + "".join(self.rng.choice(string.digits) for _ in range(tail))
            n = phonenumbers.parse("+" + str(ex.country_code) + nsn, None)
            if not phonenumbers.is_valid_number(n):
                continue
            text = phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.NATIONAL)
            if not g.phone_ok(text, region) or text in pool:
                continue
            pool.append(text)
            return text

    # ---- password hashes ------------------------------------------------------

    def scram(self) -> str:
        salt = bytes(self.rng.getrandbits(8) for _ in range(16))
        salted = hashlib.pbkdf2_hmac("sha256", self.password(), salt, 4096)
        client = hmac.new(salted, b"Client Key", "sha256").digest()
        stored = hashlib.sha256(client).digest()
        server = hmac.new(salted, b"Server Key", "sha256").digest()
        b = lambda x: base64.b64encode(x).decode()  # noqa: E731
        return f"SCRAM-SHA-256$4096:{b(salt)}${b(stored)}:{b(server)}"

    def pg_md5(self) -> str:
        return "md5" + hashlib.md5(self.password() + b"alice").hexdigest()

    def mysql_native(self) -> str:
        return "*" + hashlib.sha1(hashlib.sha1(self.password()).digest()).hexdigest().upper()

    def caching_sha2(self) -> str:
        # Printable salt bytes, as mysql.user shows them most of the time.
        salt = self.chars(string.ascii_letters + string.digits + "!#%&()*+,-.:;<=>?@[]^_{|}~", 20)
        return f"$A$005${salt}{self.chars(CRYPT64, 43)}"

    def bcrypt(self) -> str:
        return f"${self.rng.choice(['2a', '2b', '2y'])}${self.rng.choice([10, 11, 12]):02d}${self.chars(CRYPT64, 53)}"

    def argon2(self) -> str:
        b = lambda n: base64.b64encode(bytes(self.rng.getrandbits(8) for _ in range(n))).decode().rstrip("=")  # noqa: E731
        return f"$argon2id$v=19$m={self.rng.choice([19456, 65536, 102400])},t={self.rng.randint(1, 4)},p={self.rng.randint(1, 8)}${b(16)}${b(32)}"

    def scrypt(self) -> str:
        if self.rng.random() < 0.5:
            salt = bytes(self.rng.getrandbits(8) for _ in range(16))
            h = hashlib.scrypt(self.password(), salt=salt, n=16384, r=8, p=1, dklen=32)
            b = lambda x: base64.b64encode(x).decode().rstrip("=")  # noqa: E731
            return f"$scrypt$ln=14,r=8,p=1${b(salt)}${b(h)}"
        return f"$7$C6..../....{self.chars(CRYPT64, 16)}${self.chars(CRYPT64, 43)}"

    def sha_crypt(self) -> str:
        rounds = f"rounds={self.rng.choice([5000, 80000, 656000])}$" if self.rng.random() < 0.3 else ""
        salt = self.chars(CRYPT64, self.rng.randint(8, 16))
        if self.rng.random() < 0.5:
            return f"$5${rounds}{salt}${self.chars(CRYPT64, 43)}"
        return f"$6${rounds}{salt}${self.chars(CRYPT64, 86)}"

    def md5_crypt(self) -> str:
        tag = self.rng.choice(["1", "apr1"])
        return f"${tag}${self.chars(CRYPT64, 8)}${self.chars(CRYPT64, 22)}"

    def django(self) -> str:
        salt = self.chars(string.ascii_letters + string.digits, 22)
        h = hashlib.pbkdf2_hmac("sha256", self.password(), salt.encode(), 1000)
        return f"pbkdf2_sha256$260000${salt}${base64.b64encode(h).decode()}"

    def ldap(self) -> str:
        pw = self.password()
        if self.rng.random() < 0.5:
            return "{SHA}" + base64.b64encode(hashlib.sha1(pw).digest()).decode()
        salt = bytes(self.rng.getrandbits(8) for _ in range(8))
        return "{SSHA}" + base64.b64encode(hashlib.sha1(pw + salt).digest() + salt).decode()

    HASHES = {
        "hash_scram": scram, "hash_pg_md5": pg_md5, "hash_mysql_native": mysql_native,
        "hash_caching_sha2": caching_sha2, "hash_bcrypt": bcrypt, "hash_argon2": argon2,
        "hash_scrypt": scrypt, "hash_sha_crypt": sha_crypt, "hash_md5_crypt": md5_crypt,
        "hash_django": django, "hash_ldap": ldap,
    }

    # ---- cells -------------------------------------------------------------

    def wrap(self, family: str, segments: list, loc: str = "en_US") -> g.Cell:
        """One cell: bare (the segments alone) or inside a sentence."""
        r = self.rng.random()
        if r < 0.5:
            text, labels = g.render_plain(segments)
        else:
            f = self.gen.fk(loc)
            text, labels = g.render_plain([f.sentence(nb_words=4) + " "] + segments + [" " + f.sentence(nb_words=3)])
        return g.Cell(family, loc, text, labels)

    def positive(self, family: str) -> g.Cell:
        rng = self.rng
        V = g.Value
        if family == "card_expiry":
            card = self.card_digits()
            mm, yy = rng.randint(1, 12), rng.randint(24, 35)
            tail = rng.choice([f"/{mm:02d}/{yy}", f"/{mm:02d}{yy}", f"-{mm:02d}{yy}"])
            return self.wrap(family, [V("card", card), tail])
        if family == "card_cents":
            return self.wrap(family, [V("card", self.card_digits()), rng.choice([".00", ".0", f".{rng.randint(10, 99)}"])])
        if family == "card_dotted":
            d = self.card_digits(16)
            return self.wrap(family, [V("card", ".".join(d[i:i + 4] for i in range(0, 16, 4)))])
        if family == "card_glued":
            label = rng.choice(["cc", "CC", "card", "pan", "user", "acct", "cardno", "visa"])
            sep = rng.choice(["#", "_", "/", ".", ":", "="])
            return self.wrap(family, [label + sep, V("card", self.card_digits())])
        if family == "iban_lower":
            v = self.gen.iban("de_DE").text.lower()
            return self.wrap(family, [rng.choice(["", "iban ", "IBAN: "]), V("iban", v)])
        if family == "ssn_glued":
            ssn = self.gen.us_ssn().text
            label = rng.choice(["SSN#", "ssn#", "SSN_", "ssn:", "SSN=", "ssn/"])
            if label.endswith((":", "=")) and rng.random() < 0.5:
                ssn = ssn.replace("-", "")
            return self.wrap(family, [label, V("us_ssn", ssn)])
        if family == "email_plus":
            f = self.gen.fk("en_US")
            local = f.user_name() + "+" + rng.choice(["news", "billing", "x", "2024"])
            domain = rng.choice(["mail.", "eu.", "corp.mail."]) + f.domain_name()
            return self.wrap(family, [rng.choice(["", "email:", "mailto:"]), V("email", f"{local}@{domain}")])
        if family == "email_idn":
            f = self.gen.fk("de_DE")
            name = rng.choice(["jürgen", "zoë", "müller", "søren", "andré", "łukasz"])
            host = rng.choice(["müller", "bücher", "café-paris", "straße", "köln-info"])
            tld = rng.choice(["de", "at", "fr", "com", "eu"])
            return self.wrap(family, [V("email", f"{name}.{f.last_name().lower().replace(' ', '')}@{host}.{tld}")], "de_DE")
        if family in self.HASHES:
            value = self.HASHES[family](self)
            return self.wrap(family, [rng.choice(["", "hash: ", "rolpassword=", "authentication_string "]), V("password_hash", value)])
        if family.startswith(("b64_", "hex_")):
            kind = rng.choice(["email", "card", "iban"])
            inner = self.gen.value(kind, "en_GB").text
            plain = rng.choice(["contact {} please", "{}", "billing: {}", "note - {} - ok"]).format(inner)
            raw = plain.encode()
            if family == "b64_std":
                enc = base64.b64encode(raw).decode()
            elif family == "b64_url":
                enc = base64.urlsafe_b64encode(raw + b"?>~").decode().rstrip("=")
            elif family == "hex_lower":
                enc = raw.hex()
            else:
                enc = raw.hex().upper()
            return self.wrap(family, [rng.choice(["", "payload=", "blob: "]), V(kind, enc)])
        if family == "phone_national_ctx":
            region, templates = rng.choice(PHONE_CONTEXT)
            number = self.national(region)
            head, tail = rng.choice(templates).split("{}")
            cell = self.wrap(family, [head, V("phone", number), tail])
            cell.locale = region
            return cell
        raise AssertionError(family)

    def negative(self, family: str) -> g.Cell:
        rng = self.rng
        if family == "timestamp17":
            v = f"{rng.randint(2019, 2026)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{rng.randint(0, 23):02d}{rng.randint(0, 59):02d}{rng.randint(0, 59):02d}{rng.randint(0, 999):03d}"
        elif family == "version_dotted":
            v = rng.choice(["", "v", "version "]) + f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 99)}.{rng.randint(1000, 9999)}"
        elif family == "ip_like":
            parts = [rng.randint(0, 255) for _ in range(4)]
            parts[rng.randrange(4)] = rng.randint(256, 9999)
            v = ".".join(map(str, parts)) if rng.random() < 0.5 else ".".join(str(rng.randint(1, 999)) for _ in range(5))
        elif family == "glued_luhn_failing":
            v = rng.choice(["cc#", "order#", "user_", "ref/", "id.", "txn="]) + self.luhn_failing(16)
        elif family == "order_number":
            v = rng.choice([f"ORD-{rng.randint(2019, 2026)}-{self.gen.digits(6)}", f"INV-{rng.randint(2019, 2026)}-{self.luhn_failing(16)}",
                            f"PO#{self.gen.digits(8)}", f"order_{rng.randint(2019, 2026)}_{self.gen.digits(5)}"])
        elif family == "hex_digest":
            blob = bytes(rng.getrandbits(8) for _ in range(32))
            v = rng.choice([f"checksum {hashlib.sha256(blob).hexdigest()}", f"commit {hashlib.sha1(blob).hexdigest()}",
                            f"etag \"{hashlib.md5(blob).hexdigest()}\"", f"sha256:{hashlib.sha256(blob).hexdigest().upper()}"])
        elif family == "b64_random":
            blob = bytes(rng.getrandbits(8) for _ in range(rng.randint(12, 48)))
            v = rng.choice([base64.b64encode(blob).decode(), base64.urlsafe_b64encode(blob).decode().rstrip("="), blob.hex()])
        elif family == "encoded_clean_text":
            raw = self.gen.fk("en_US").sentence(nb_words=6).encode()
            v = rng.choice([base64.b64encode(raw).decode(), raw.hex()])
        elif family == "dollar_text":
            v = rng.choice([f"costs ${rng.randint(1, 99)}.{rng.randint(0, 99):02d}", "PATH=$HOME/bin:$PATH", f"${rng.randint(1, 9)}$ each",
                            f"price ${rng.randint(1, 9)} and ${rng.randint(1, 9)}", "echo $1 $2 $argv", "{SHA} or {SSHA} scheme"])
        elif family == "invoice_phone_like":
            v = rng.choice([f"INV {self.gen.digits(4)} {self.gen.digits(6)}", f"RE-0{self.gen.digits(2)}-{self.gen.digits(7)}",
                            f"Rechnung Nr. {self.gen.digits(5)}/{self.gen.digits(4)}"])
        else:
            raise AssertionError(family)
        cell = self.wrap(family, [v])
        cell.negative = family
        return cell

    def reference_groups(self) -> str:
        """Twelve digits in groups of four that no digit validator takes
        (a Luhn-valid one is a Maestro number)."""
        while True:
            d = str(self.rng.randint(1, 9)) + self.gen.digits(11)
            if not g.luhn_ok(d) and not g.digit_kinds(d):
                return f"{d[:4]} {d[4:8]} {d[8:]}"

    def column(self, cid: int, negative: str | None) -> dict:
        rng = self.rng
        n = rng.randint(8, 24)
        if negative is None:
            region = rng.choice(COLUMN_REGIONS)
            cells = []
            for _ in range(n):
                number = self.national(region)
                if region == "DE" and rng.random() < 0.3:
                    number = number.replace(" ", "/", 1)
                cells.append(number)
            return {"id": cid, "locale": region, "kind": "phone", "negative": None, "cells": cells}
        makers = {
            "invoice_number": lambda: f"INV {self.gen.digits(4)} {self.gen.digits(6)}",
            "zero_padded_id": lambda: "0" * rng.randint(1, 3) + self.gen.digits(rng.randint(5, 8)),
            "date": lambda: rng.choice(["{y}-{m:02d}-{d:02d}", "{d:02d}.{m:02d}.{y}", "{m:02d}/{d:02d}/{y}"]).format(
                y=rng.randint(1990, 2026), m=rng.randint(1, 12), d=rng.randint(1, 28)),
            "amount": lambda: f"{rng.randint(1, 999)}.{rng.randint(0, 999):03d}.{rng.randint(0, 999):03d}",
            "time": lambda: f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}",
            "postcode": lambda: f"0{self.gen.digits(4)}",
            "order_number": lambda: f"ORD-{rng.randint(2019, 2026)}-{self.gen.digits(6)}",
            "reference_groups": self.reference_groups,
        }
        cells = [makers[negative]() for _ in range(n)]
        return {"id": cid, "locale": "xx", "kind": None, "negative": negative, "cells": cells}


POSITIVE_FAMILIES = [
    "card_expiry", "card_cents", "card_dotted", "card_glued", "iban_lower", "ssn_glued", "email_plus",
    "email_idn", *Shapes.HASHES, "b64_std", "b64_url", "hex_lower", "hex_upper", "phone_national_ctx",
]
NEGATIVE_FAMILIES = [
    "timestamp17", "version_dotted", "ip_like", "glued_luhn_failing", "order_number", "hex_digest",
    "b64_random", "encoded_clean_text", "dollar_text", "invoice_phone_like",
]
COLUMN_NEGATIVES = ["invoice_number", "zero_padded_id", "date", "amount", "time", "postcode", "order_number", "reference_groups"]

FORMATS = {
    "password_hash": r"SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+|md5[0-9a-f]{32}|\*[0-9A-F]{40}"
                     r"|\$A\$005\$.{20}[./A-Za-z0-9]{43}|\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}|\$argon2id\$v=19\$m=\d+,t=\d,p=\d\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+"
                     r"|\$scrypt\$ln=14,r=8,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+|\$7\$[./A-Za-z0-9]+\$[./A-Za-z0-9]{43}"
                     r"|\$[56]\$(rounds=\d+\$)?[./A-Za-z0-9]{8,16}\$([./A-Za-z0-9]{43}|[./A-Za-z0-9]{86})|\$(1|apr1)\$[./A-Za-z0-9]{8}\$[./A-Za-z0-9]{22}"
                     r"|pbkdf2_sha256\$260000\$[A-Za-z0-9]+\$[A-Za-z0-9+/=]{44}|\{S?SHA\}[A-Za-z0-9+/=]{28,}",
}


def check(cell: g.Cell) -> None:
    """Labels point at what they claim. Encoded runs are decoded and the
    value inside checked by generate.py's oracles."""
    raw = cell.text.encode()
    if cell.negative and cell.labels:
        raise AssertionError("negative with labels")
    for lab in cell.labels:
        piece = raw[lab["start"]:lab["end"]].decode()
        kind = lab["kind"]
        if cell.shape.startswith(("b64_", "hex_")):
            if cell.shape.startswith("hex_"):
                decoded = bytes.fromhex(piece).decode()
            else:
                decoded = base64.b64decode(piece.replace("-", "+").replace("_", "/") + "=" * (-len(piece) % 4)).decode()
            if not decoded.isprintable():
                raise AssertionError(f"{decoded!r} is not text")
        elif kind == "password_hash":
            if not re.fullmatch(FORMATS[kind], piece, re.S):
                raise AssertionError(f"bad hash {piece!r}")
        elif kind == "card":
            d = g.digits_of(piece)
            if not (g.luhn_ok(d) and g.issued_iin(d)):
                raise AssertionError(piece)
        elif kind == "iban":
            if not g.std_iban.is_valid(piece.upper()):
                raise AssertionError(piece)
        elif kind == "email" and cell.shape == "email_idn":
            if "@" not in piece:
                raise AssertionError(piece)
        elif kind == "phone":
            if not g.phone_ok(piece, cell.locale):
                raise AssertionError(piece)
        elif not g.label_ok(cell, kind, piece, "", ""):
            raise AssertionError(f"bad {kind} {piece!r}")


def main() -> int:
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--per-family", type=int, default=80)
    ap.add_argument("--columns", type=int, default=240)
    ap.add_argument("--out", required=True)
    ap.add_argument("--columns-out", required=True)
    args = ap.parse_args()

    s = Shapes(args.seed)
    cells: list[g.Cell] = []
    for family in POSITIVE_FAMILIES:
        for _ in range(args.per_family):
            cell = s.positive(family)
            check(cell)
            cells.append(cell)
    for family in NEGATIVE_FAMILIES:
        for _ in range(args.per_family):
            cells.append(s.negative(family))
    s.rng.shuffle(cells)
    counts = Counter()
    with open(args.out, "w", encoding="utf-8", newline="\n") as out:
        for i, cell in enumerate(cells):
            obj = {"id": i, "shape": cell.shape, "locale": cell.locale, "text": cell.text, "labels": cell.labels}
            if cell.negative:
                obj["negative"] = cell.negative
            for lab in cell.labels:
                counts[lab["kind"]] += 1
            out.write(json.dumps(obj, ensure_ascii=False) + "\n")
    with open(args.columns_out, "w", encoding="utf-8", newline="\n") as out:
        for cid in range(args.columns):
            negative = None if cid % 2 == 0 else COLUMN_NEGATIVES[(cid // 2) % len(COLUMN_NEGATIVES)]
            out.write(json.dumps(s.column(cid, negative), ensure_ascii=False) + "\n")
    print(f"{len(cells)} cells, labels: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
