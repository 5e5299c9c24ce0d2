#!/usr/bin/env python3
"""Writes the labelled corpus that protocol-tests/mask_eval.rs scores the
masking detectors against.

    python3 scripts/mask-corpus/generate.py --seed 7 --cells 14000 \
        --out protocol-tests/corpus/masking.jsonl

One JSON object per line, one cell per object:

    {"id": 17, "shape": "text", "locale": "de_DE", "text": "...",
     "labels": [{"kind": "email", "start": 12, "end": 31}]}

`start`/`end` are byte offsets into the UTF-8 encoding of `text`. A person
label also has `"form"` (full, caps, comma, initial, particle, title) and,
when a word of the name is missing from the detector's lexicon
(src/mask/scan/person/lexicon.txt, built with 15 % of the names held out),
`"held_out": true`. Names are drawn from Faker's lists for the cell's
locale, and one in seven from romanised Japanese, Chinese, Pakistani and
Turkish lists; the lexicon must be regenerated first when it changes. Hard
negative cells carry `"negative": "<family>"` and no labels: nothing in them
may be reported. `shape` is `bare` (the value alone), `text` (a sentence with
one to three values) or `json` (a serialized document; labels point at the
characters inside the quotes, escapes included).

Install the pinned packages (requirements.txt beside this file) and run the
command above: the output depends only on the seed and those versions, and a
rerun is byte-identical. Nothing reads the clock, the string hash seed is
pinned (the script restarts itself with PYTHONHASHSEED=0), our own choices
come from one random.Random(seed) and Faker's from Faker.seed(seed). Faker
providers that read the clock (sv_SE and fi_FI ssn(), pl_PL pesel()) or the
unseeded global random module (es_ES nif(), nie()) are replaced by our own
generators for that reason, as is en_GB ssn(), whose NINOs all use the
never-issued prefix ZZ.

A label is only as good as its oracle, so every positive is checked before it
is written and read back from the finished cell: national IDs with
python-stdnum (NINO by HMRC's allocation rules: stdnum has no module for it),
phones with phonenumbers, cards with Luhn and the issuers' IIN ranges, IBANs
with mod 97, GitHub tokens with their CRC32, JWTs by decoding the header.
What the corpus calls a value of a kind:

* a value valid as two kinds at once has no single right answer and is
  redrawn: a PESEL that is also a valid CPF, an Aadhaar number that passes
  Luhn, "511 493 181" (a Polish phone and a Canadian SIN), "060611-1136"
  (a personnummer and a HETU);
* a phone number that libphonenumber rejects is left out entirely; one
  without a leading +, parentheses, grouping or a trunk 0 (2025550143)
  appears only right after a context word, and so do nine bare SSN digits;
  an AWS secret key only within a few bytes after its key name or an access
  key id;
* a Faker card number outside every issuer's range (JCB 3500-3527, Maestro
  0604) is no card, and is redrawn.

Hard negatives are redrawn when they pass any of the digit validators (Luhn
for integers, the national-ID checks); a nine-digit integer is not checked
against SSN ranges, since without a context word it is not an SSN. Finally
every cell is linted: outside its labels it must hold nothing that looks like
a positive (an IPv4 address, an email, a Luhn-valid run at word boundaries,
a prefixed token), or it is redrawn. Runs of digits inside hex hashes are
left alone on purpose: ignoring them is the detectors' job.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import ipaddress
import json
import os
import random
import re
import string
import sys
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field

import phonenumbers
from faker import Faker
from stdnum import iban as std_iban
from stdnum import luhn
from stdnum.br import cpf as std_cpf
from stdnum.ca import sin as std_sin
from stdnum.de import idnr as std_idnr
from stdnum.es import dni as std_dni
from stdnum.es import nie as std_nie
from stdnum.fi import hetu as std_hetu
from stdnum.fr import nir as std_nir
from stdnum.in_ import aadhaar as std_aadhaar
from stdnum.it import codicefiscale as std_cf
from stdnum.nl import bsn as std_bsn
from stdnum.pl import pesel as std_pesel
from stdnum.se import personnummer as std_pnr
from stdnum.us import ssn as std_ssn

# locale -> (phone region, language of the context phrases)
LOCALES = {
    "en_US": ("US", "en"),
    "en_GB": ("GB", "en"),
    "de_DE": ("DE", "de"),
    "fr_FR": ("FR", "fr"),
    "es_ES": ("ES", "es"),
    "it_IT": ("IT", "it"),
    "nl_NL": ("NL", "nl"),
    "pl_PL": ("PL", "pl"),
    "pt_BR": ("BR", "pt"),
    "sv_SE": ("SE", "sv"),
    "fi_FI": ("FI", "fi"),
    "en_CA": ("CA", "en"),
    "en_IN": ("IN", "en"),
}
LOCALE_NAMES = list(LOCALES)

# Names from these locales are mixed in, romanised as Faker writes them.
ROMANISED_NAME_LOCALES = ["ja_JP", "zh_CN", "en_PK", "tr_TR"]

NAME_PARTICLES = {
    "nl_NL": ["van", "van der", "van den", "de"], "de_DE": ["von", "von der"], "fr_FR": ["de", "du"],
    "es_ES": ["de la", "del"], "pt_BR": ["da", "dos", "de"], "it_IT": ["di", "della"],
}

TITLES = {
    "en": ["Mr", "Mrs", "Ms", "Dr", "Dr.", "Prof.", "Mr."], "de": ["Herr", "Frau", "Dr.", "Prof. Dr."],
    "fr": ["M.", "Mme", "Mlle", "Dr"], "es": ["Sr.", "Sra.", "Dr."], "it": ["Sig.", "Sig.ra", "Dott.", "Dott.ssa"],
    "nl": ["Dhr.", "Mevr.", "Dr."], "pl": ["Pan", "Pani", "Dr"], "pt": ["Sr.", "Sra.", "Dr."],
}

# The detector's lexicon, to tell which test names it has never seen.
LEXICON_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "mask", "scan", "person", "lexicon.txt")


def _load_lexicon() -> set:
    with open(LEXICON_PATH, encoding="utf-8") as f:
        return {line.split("\t")[0] for line in f if "g" in line.split("\t")[-1] or "s" in line.split("\t")[-1]}


LEXICON = _load_lexicon()


def in_lexicon(words: list[str]) -> bool:
    """Every given name and surname word (particles aside) is in the lexicon."""
    for w in words:
        if w[0].islower():
            continue
        key = re.sub("['’]", "", w.lower())
        if key not in LEXICON and not all(p in LEXICON for p in key.split("-")):
            return False
    return True

# Locales whose Faker bank provider prints their own IBANs; the others fall
# back to GB, which would make every IBAN British.
IBAN_LOCALES = [
    "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL", "pt_BR",
    "fi_FI", "de_AT", "de_CH", "nl_BE", "no_NO", "da_DK", "en_IE", "pt_PT",
    "cs_CZ", "el_GR", "tr_TR",
]

# Extra regions for E.164 phones, beyond the corpus locales.
E164_REGIONS = [r for r, _ in LOCALES.values()] + ["AT", "CH", "BE", "IE", "NO", "DK", "JP", "AU", "MX"]

NATIONAL_KIND_LOCALE = {
    "us_ssn": "en_US",
    "uk_nino": "en_GB",
    "de_tax_id": "de_DE",
    "fr_nir": "fr_FR",
    "es_dni": "es_ES",
    "es_nie": "es_ES",
    "it_fiscal_code": "it_IT",
    "nl_bsn": "nl_NL",
    "pl_pesel": "pl_PL",
    "br_cpf": "pt_BR",
    "in_aadhaar": "en_IN",
    "ca_sin": "en_CA",
    "se_personnummer": "sv_SE",
    "fi_hetu": "fi_FI",
}

GENERIC_KINDS = ["email", "card", "iban", "phone", "ipv4", "ipv6", "person"]
SECRET_KINDS = [
    "aws_access_key", "aws_secret_key", "github_token", "slack_token",
    "stripe_key", "gitlab_token", "google_api_key", "openai_key", "npm_token",
    "pypi_token", "jwt", "private_key", "url_credentials",
]
# json_secret is only ever drawn for JSON cells.
ALL_KINDS = GENERIC_KINDS + list(NATIONAL_KIND_LOCALE) + SECRET_KINDS + ["json_secret"]

# Relative frequency of a kind as the first value of a positive cell.
KIND_WEIGHT = {k: 1.0 for k in ALL_KINDS}
KIND_WEIGHT.update({"email": 2.0, "phone": 2.5, "card": 2.0, "iban": 1.5, "private_key": 0.6, "json_secret": 0.0,
                    "person": 3.0})

NEGATIVE_FAMILIES = [
    "uuid", "md5", "sha1", "sha256", "ean13", "isbn10", "isbn13", "integer",
    "date", "timestamp", "version", "base64", "order_number", "amount",
    "git_sha", "placeholder", "file_path", "url", "mac_address", "time",
    "fake_jwt", "bigint_id", "epoch", "zip_code",
] + ["person_place", "person_brand", "person_sentence", "person_calendar", "person_identifier", "person_company"]
# The person_* families hold capitalised words that are no one's name; the
# evaluation allows person findings on at most 1 % of their cells.

PLACEHOLDERS = [
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "${API_KEY}",
    "{{ token }}",
    "ghp_" + "x" * 36,
    "sk_live_" + "X" * 24,
    "postgres://user:${DB_PASSWORD}@host/db",
    "changeme",
]

JSON_SECRET_KEYS = ["password", "secret", "api_key", "token", "client_secret"]

DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
B32 = string.ascii_uppercase + "234567"


# --------------------------------------------------------------------------
# Cells are built from segments: plain strings and labelled values.


@dataclass
class Value:
    """A labelled value. `start`/`end` are character offsets of the labelled
    part inside `text` (the whole text unless the kind labels a part of it,
    as url_credentials and private_key do)."""

    kind: str
    text: str
    start: int = 0
    end: int = -1
    # person only: how the name is written, and whether a word of it is
    # missing from the detector's lexicon (held out to measure
    # generalisation).
    form: str | None = None
    held_out: bool = False

    def __post_init__(self) -> None:
        if self.end < 0:
            self.end = len(self.text)

    @property
    def labelled(self) -> str:
        return self.text[self.start:self.end]


Segments = list  # of str | Value


@dataclass
class Cell:
    shape: str
    locale: str
    text: str
    labels: list = field(default_factory=list)
    negative: str | None = None


def label_of(value: Value, start: int, end: int) -> dict:
    label = {"kind": value.kind, "start": start, "end": end}
    if value.form:
        label["form"] = value.form
    if value.held_out:
        label["held_out"] = True
    return label


def render_plain(segments: Segments) -> tuple[str, list]:
    out: list[str] = []
    labels = []
    pos = 0  # bytes
    for seg in segments:
        if isinstance(seg, Value):
            head = seg.text[:seg.start]
            start = pos + len(head.encode())
            end = start + len(seg.labelled.encode())
            labels.append(label_of(seg, start, end))
            text = seg.text
        else:
            text = seg
        out.append(text)
        pos += len(text.encode())
    return "".join(out), labels


def json_escape(s: str) -> str:
    # Escaping is per character, so escaping the pieces of a string one by
    # one gives the same bytes as escaping the whole string.
    return json.dumps(s, ensure_ascii=False)[1:-1]


class Slot:
    """A JSON string value made of segments; stands in the document until
    serialization."""

    def __init__(self, segments: Segments):
        self.segments = segments


def render_json(doc, rng: random.Random) -> tuple[str, list]:
    slots: list[Slot] = []

    def walk(node):
        if isinstance(node, Slot):
            slots.append(node)
            return f"\u2063MRK{len(slots) - 1}KRM\u2063"
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    plain = walk(doc)
    style = rng.random()
    if style < 0.45:
        serialized = json.dumps(plain, ensure_ascii=False)
    elif style < 0.93:
        serialized = json.dumps(plain, ensure_ascii=False, separators=(",", ":"))
    else:
        serialized = json.dumps(plain, ensure_ascii=False, indent=2)

    out = bytearray()
    labels = []
    pos = 0
    for m in re.finditer("\u2063MRK(\\d+)KRM\u2063", serialized):
        out += serialized[pos:m.start()].encode()
        for seg in slots[int(m.group(1))].segments:
            if isinstance(seg, Value):
                start = len(out) + len(json_escape(seg.text[:seg.start]).encode())
                end = start + len(json_escape(seg.labelled).encode())
                labels.append(label_of(seg, start, end))
                out += json_escape(seg.text).encode()
            else:
                out += json_escape(seg).encode()
        pos = m.end()
    out += serialized[pos:].encode()
    if len(re.findall("MRK\\d+KRM", serialized)) != len(slots):
        raise AssertionError("a slot marker was lost in serialization")
    return out.decode(), labels


# --------------------------------------------------------------------------
# Oracles.


def digits_of(s: str) -> str:
    return re.sub(r"[ \-./]", "", s)


def luhn_ok(d: str) -> bool:
    return d.isdigit() and luhn.is_valid(d)


# Validators for every digit-only format a detector could claim. A value of
# one kind that also passes another kind's validator is ambiguous. us_ssn is
# not here: bare nine digits are an SSN only after a context word, which the
# generator controls.
DIGIT_ORACLES = {
    "card": lambda d: 12 <= len(d) <= 19 and luhn_ok(d),
    "ca_sin": lambda d: len(d) == 9 and std_sin.is_valid(d),
    "nl_bsn": lambda d: len(d) == 9 and std_bsn.is_valid(d),
    "de_tax_id": lambda d: len(d) == 11 and std_idnr.is_valid(d),
    "pl_pesel": lambda d: len(d) == 11 and std_pesel.is_valid(d),
    "br_cpf": lambda d: len(d) == 11 and std_cpf.is_valid(d),
    "fr_nir": lambda d: len(d) == 15 and std_nir.is_valid(d),
    "in_aadhaar": lambda d: len(d) == 12 and std_aadhaar.is_valid(d),
    "se_personnummer": lambda d: len(d) in (10, 12) and std_pnr.is_valid(d),
}


def issued_iin(d: str) -> bool:
    """The number's prefix and length belong to a card network."""
    n = len(d)
    p2, p3, p4 = int(d[:2]), int(d[:3]), int(d[:4])
    return (
        (d[0] == "4" and n in (13, 16, 19))
        or ((51 <= p2 <= 55 or 2221 <= p4 <= 2720) and n == 16)
        or (p2 in (34, 37) and n == 15)
        or ((p4 == 6011 or 644 <= p3 <= 649 or p2 == 65) and 16 <= n <= 19)
        or (3528 <= p4 <= 3589 and 16 <= n <= 19)
        or (p4 in (1800, 2131) and n == 15)
        or ((300 <= p3 <= 305 or p2 in (36, 38, 39)) and 14 <= n <= 19)
        or ((p4 in (5018, 5020, 5038, 5893) or 56 <= p2 <= 69) and 12 <= n <= 19)
    )


def digit_kinds(s: str) -> list[str]:
    d = digits_of(s)
    if not d.isdigit():
        return []
    return [k for k, ok in DIGIT_ORACLES.items() if ok(d)]


# Formats with a separator that two kinds share: YYMMDD-NNNC is a Swedish
# personnummer and, when the check character is a digit, can be a Finnish
# HETU (DDMMYY-NNNC) too.
TEXT_ORACLES = {
    "se_personnummer": std_pnr.is_valid,
    "fi_hetu": std_hetu.is_valid,
}


def ambiguous(kind: str, s: str) -> bool:
    if any(k != kind for k in digit_kinds(s)):
        return True
    return any(k != kind and ok(s) for k, ok in TEXT_ORACLES.items())


NINO_BAD_FIRST = set("DFIQUV")
NINO_BAD_SECOND = set("DFIOQUV")
NINO_BAD_PREFIX = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}


def nino_ok(s: str) -> bool:
    # python-stdnum has no NINO module; these are HMRC's allocation rules.
    c = s.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{6}[A-D]", c):
        return False
    return c[0] not in NINO_BAD_FIRST and c[1] not in NINO_BAD_SECOND and c[:2] not in NINO_BAD_PREFIX


def phone_ok(s: str, region: str | None) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(s, region))
    except phonenumbers.NumberParseException:
        return False


def phone_shaped(s: str) -> bool:
    """A phone a reader recognises without a context word: international
    prefix, parentheses, grouping, or a national trunk 0. A bare run of
    digits like 2025550143 is as likely an id."""
    return s.startswith("+") or s.startswith("0") or bool(re.search(r"[ ()\-.]", s))


def jwt_header_is_json(token: str) -> bool:
    head = token.split(".")[0]
    try:
        raw = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))
        return isinstance(json.loads(raw), dict)
    except (ValueError, UnicodeDecodeError):
        return False


# --------------------------------------------------------------------------


class Gen:
    def __init__(self, seed: int):
        Faker.seed(seed)
        self.rng = random.Random(seed)
        self.fakers = {loc: Faker(loc) for loc in dict.fromkeys(LOCALE_NAMES + IBAN_LOCALES + ROMANISED_NAME_LOCALES)}
        self.e164_examples = []
        for region in E164_REGIONS:
            for t in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
                n = phonenumbers.example_number_for_type(region, t)
                if n is not None:
                    self.e164_examples.append(n)
        self.rejected = Counter()

    # ---- helpers ----------------------------------------------------------

    def chars(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def digits(self, n: int) -> str:
        return self.chars(string.digits, n)

    def fk(self, loc: str) -> Faker:
        return self.fakers[loc]

    def date(self, lo: int = 1940, hi: int = 2024) -> tuple[int, int, int]:
        return self.rng.randint(lo, hi), self.rng.randint(1, 12), self.rng.randint(1, 28)

    # ---- positives ----------------------------------------------------------

    def email(self, loc: str) -> Value:
        f = self.fk(loc)
        r = self.rng.random()
        text = f.email() if r < 0.4 else f.free_email() if r < 0.75 else f.company_email()
        return Value("email", text)

    def card(self, loc: str) -> Value:
        providers = ["visa13", "visa16", "visa19", "mastercard", "amex", "discover",
                     "jcb15", "jcb16", "diners", "maestro"]
        while True:
            number = self.fk("en_US").credit_card_number(self.rng.choice(providers))
            if not issued_iin(number):
                # Faker draws JCB as "35" + anything and Maestro from a
                # "0604" range: Luhn-valid, but no card network's number.
                self.rejected["card:iin"] += 1
                continue
            if luhn_ok(number) and not ambiguous("card", number):
                break
            self.rejected["card"] += 1
        r = self.rng.random()
        if r < 0.5 or len(number) not in (15, 16):
            return Value("card", number)
        sep = " " if r < 0.8 else "-"
        if len(number) == 16:
            groups = [number[i:i + 4] for i in range(0, 16, 4)]
        elif number.startswith(("34", "37")):
            groups = [number[:4], number[4:10], number[10:]]
        else:
            return Value("card", number)
        return Value("card", sep.join(groups))

    def iban(self, loc: str) -> Value:
        bank_loc = loc if loc in IBAN_LOCALES and self.rng.random() < 0.5 else self.rng.choice(IBAN_LOCALES)
        number = self.fk(bank_loc).iban()
        if not std_iban.is_valid(number):
            raise AssertionError(f"faker iban failed mod 97: {number}")
        if self.rng.random() < 0.4:
            number = " ".join(number[i:i + 4] for i in range(0, len(number), 4))
        return Value("iban", number)

    def phone(self, loc: str, need_shape: bool) -> Value:
        region = LOCALES[loc][0]
        while True:
            if self.rng.random() < 0.5:
                text = self.fk(loc).phone_number()
                ok = phone_ok(text, region)
            else:
                text = self.e164()
                ok = phone_ok(text, None)
            if not ok:
                continue  # not a phone and not a non-phone: left out entirely
            if need_shape and not phone_shaped(text):
                continue
            if not text.startswith("+") and digit_kinds(text):
                # "511 493 181" is a Polish phone and a valid Canadian SIN;
                # a leading + settles it, nothing else does.
                self.rejected["phone"] += 1
                continue
            return Value("phone", text)

    def e164(self) -> str:
        base = self.rng.choice(self.e164_examples)
        number = phonenumbers.PhoneNumber()
        number.merge_from(base)
        if self.rng.random() < 0.7:
            # A randomised number of the same type: keep the leading digits
            # that select the range, redraw the rest until it is valid.
            nsn = str(base.national_number)
            keep = max(2, len(nsn) - self.rng.randint(3, 6))
            for _ in range(50):
                number.national_number = int(nsn[:keep] + self.digits(len(nsn) - keep))
                if phonenumbers.is_valid_number(number):
                    break
            else:
                number.merge_from(base)
        fmt = phonenumbers.PhoneNumberFormat.E164 if self.rng.random() < 0.5 else phonenumbers.PhoneNumberFormat.INTERNATIONAL
        return phonenumbers.format_number(number, fmt)

    def ipv4(self, loc: str) -> Value:
        f = self.fk(loc)
        r = self.rng.random()
        text = f.ipv4_public() if r < 0.45 else f.ipv4_private() if r < 0.8 else f.ipv4()
        return Value("ipv4", text)

    def ipv6(self, loc: str) -> Value:
        r = self.rng.random()
        if r < 0.4:
            text = self.fk(loc).ipv6()
        else:
            # Real addresses are mostly compressed: a routed prefix, zeros, an
            # interface id.
            prefix = self.rng.choice([0x2001_0DB8, 0x2A00_1450, 0x2606_4700, 0x2600_1F18, 0xFE80_0000, 0xFD12_3456])
            groups = [prefix >> 16, prefix & 0xFFFF] + [0] * 6
            for i in range(8 - self.rng.randint(1, 4), 8):
                groups[i] = self.rng.getrandbits(16)
            value = 0
            for g in groups:
                value = (value << 16) | g
            text = str(ipaddress.IPv6Address(value))
            if r > 0.9:
                text = text.upper()
        return Value("ipv6", text)

    # national IDs

    def us_ssn(self, bare_digits: bool = False) -> Value:
        while True:
            text = self.fk("en_US").ssn()
            if std_ssn.is_valid(text) and not ambiguous("us_ssn", text):
                break
            self.rejected["us_ssn"] += 1
        return Value("us_ssn", text.replace("-", "") if bare_digits else text)

    def uk_nino(self) -> Value:
        while True:
            prefix = self.chars(string.ascii_uppercase, 2)
            text = prefix + self.digits(6) + self.rng.choice("ABCD")
            if nino_ok(text):
                break
        r = self.rng.random()
        if r < 0.4:
            text = f"{text[:2]} {text[2:4]} {text[4:6]} {text[6:8]} {text[8]}"
        elif r < 0.55:
            text = f"{text[:2]} {text[2:8]} {text[8]}"
        return Value("uk_nino", text)

    def de_tax_id(self) -> Value:
        while True:
            # Ten digits, first non-zero, exactly one digit used twice (or
            # three times, not all adjacent), then the ISO 7064 MOD 11,10
            # check digit.
            body = self.rng.sample(string.digits, 9)
            body.insert(self.rng.randrange(10), self.rng.choice(body))
            if self.rng.random() < 0.2:
                counts = Counter(body)
                twice = [d for d, c in counts.items() if c == 2][0]
                body[body.index(next(d for d, c in counts.items() if c == 1))] = twice
            if body[0] == "0":
                continue
            number = "".join(body)
            product = 10
            for d in number:
                s = (int(d) + product) % 10 or 10
                product = (s * 2) % 11
            number += str((11 - product) % 10)
            if std_idnr.is_valid(number) and not ambiguous("de_tax_id", number):
                return Value("de_tax_id", number)
            self.rejected["de_tax_id"] += 1

    def fr_nir(self) -> Value:
        while True:
            text = self.fk("fr_FR").ssn()
            if std_nir.is_valid(text) and not ambiguous("fr_nir", text):
                return Value("fr_nir", text)
            self.rejected["fr_nir"] += 1

    # Faker's es_ES nif() and nie() draw from the unseeded global random
    # module, so both are generated here with the same letter table.

    def es_dni(self) -> Value:
        body = f"{self.rng.randrange(0, 100_000_000):08d}"
        text = body + DNI_LETTERS[int(body) % 23]
        if not std_dni.is_valid(text):
            raise AssertionError(f"not a valid DNI: {text}")
        if self.rng.random() < 0.15:
            text = text[:8] + "-" + text[8:]
        return Value("es_dni", text)

    def es_nie(self) -> Value:
        first = self.rng.randrange(3)
        body = f"{self.rng.randrange(0, 10_000_000):07d}"
        text = "XYZ"[first] + body + DNI_LETTERS[int(str(first) + body) % 23]
        if not std_nie.is_valid(text):
            raise AssertionError(f"not a valid NIE: {text}")
        return Value("es_nie", text)

    def it_fiscal_code(self) -> Value:
        text = self.fk("it_IT").ssn()
        if not std_cf.is_valid(text):
            raise AssertionError(f"faker it_IT ssn is not a valid codice fiscale: {text}")
        return Value("it_fiscal_code", text)

    def nl_bsn(self) -> Value:
        while True:
            text = self.fk("nl_NL").ssn()
            if std_bsn.is_valid(text) and not ambiguous("nl_bsn", text):
                return Value("nl_bsn", text)
            self.rejected["nl_bsn"] += 1

    def pl_pesel(self) -> Value:
        while True:
            year, month, day = self.date(1920, 2015)
            century = {19: 0, 20: 20}[year // 100]
            digits = f"{year % 100:02d}{month + century:02d}{day:02d}" + self.digits(4)
            weights = (1, 3, 7, 9, 1, 3, 7, 9, 1, 3)
            check = (10 - sum(int(d) * w for d, w in zip(digits, weights)) % 10) % 10
            number = digits + str(check)
            if std_pesel.is_valid(number) and not ambiguous("pl_pesel", number):
                return Value("pl_pesel", number)
            self.rejected["pl_pesel"] += 1

    def br_cpf(self) -> Value:
        while True:
            text = self.fk("pt_BR").cpf()
            if std_cpf.is_valid(text) and not ambiguous("br_cpf", text):
                break
            self.rejected["br_cpf"] += 1
        if self.rng.random() < 0.4:
            text = digits_of(text)
        return Value("br_cpf", text)

    def in_aadhaar(self) -> Value:
        while True:
            body = str(self.rng.randint(2, 9)) + self.digits(10)
            number = body + verhoeff_check(body)
            if std_aadhaar.is_valid(number) and not ambiguous("in_aadhaar", number):
                break
            self.rejected["in_aadhaar"] += 1
        if self.rng.random() < 0.6:
            number = f"{number[:4]} {number[4:8]} {number[8:]}"
        return Value("in_aadhaar", number)

    def ca_sin(self) -> Value:
        while True:
            text = self.fk("en_CA").ssn()
            if std_sin.is_valid(text) and not ambiguous("ca_sin", text):
                return Value("ca_sin", text)
            self.rejected["ca_sin"] += 1

    def se_personnummer(self) -> Value:
        while True:
            year, month, day = self.date(1940, 2008)
            serial = self.digits(3)
            short = f"{year % 100:02d}{month:02d}{day:02d}{serial}"
            check = luhn.calc_check_digit(short)
            if self.rng.random() < 0.6:
                text = f"{year % 100:02d}{month:02d}{day:02d}-{serial}{check}"
            else:
                text = f"{year:04d}{month:02d}{day:02d}-{serial}{check}"
            if std_pnr.is_valid(text) and not ambiguous("se_personnummer", text):
                return Value("se_personnummer", text)
            self.rejected["se_personnummer"] += 1

    def fi_hetu(self) -> Value:
        while True:
            year, month, day = self.date(1920, 2020)
            sign = "-" if year < 2000 else "A"
            serial = f"{self.rng.randint(2, 899):03d}"
            date = f"{day:02d}{month:02d}{year % 100:02d}"
            check = "0123456789ABCDEFHJKLMNPRSTUVWXY"[int(date + serial) % 31]
            text = f"{date}{sign}{serial}{check}"
            if std_hetu.is_valid(text) and not ambiguous("fi_hetu", text):
                return Value("fi_hetu", text)
            self.rejected["fi_hetu"] += 1

    # secrets

    def aws_access_key(self) -> Value:
        return Value("aws_access_key", self.rng.choice(["AKIA", "ASIA"]) + self.chars(B32, 16))

    def aws_secret_key(self) -> Value:
        alphabet = ALNUM + "+/"
        while True:
            text = self.chars(alphabet, 40)
            if any(c.isupper() for c in text) and any(c.islower() for c in text) and any(c.isdigit() for c in text):
                return Value("aws_secret_key", text)

    def github_token(self) -> Value:
        if self.rng.random() < 0.2:
            return Value("github_token", "github_pat_" + self.chars(B62, 22) + "_" + self.chars(B62, 59))
        body = self.chars(B62, 30)
        return Value("github_token", self.rng.choice(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]) + body + base62_crc(body))

    def slack_token(self) -> Value:
        prefix = self.rng.choice(["xoxb-", "xoxp-"])
        return Value("slack_token", prefix + self.digits(self.rng.randint(10, 13)) + "-"
                     + self.digits(self.rng.randint(10, 13)) + "-" + self.chars(ALNUM, 24))

    def stripe_key(self) -> Value:
        prefix = self.rng.choice(["sk_live_", "rk_live_", "sk_test_"])
        return Value("stripe_key", prefix + self.chars(ALNUM, self.rng.randint(24, 99)))

    def gitlab_token(self) -> Value:
        return Value("gitlab_token", "glpat-" + self.chars(URLSAFE, 20))

    def google_api_key(self) -> Value:
        return Value("google_api_key", "AIza" + self.chars(URLSAFE, 35))

    def openai_key(self) -> Value:
        if self.rng.random() < 0.5:
            return Value("openai_key", "sk-" + self.chars(ALNUM, 20) + "T3BlbkFJ" + self.chars(ALNUM, 20))
        return Value("openai_key", "sk-proj-" + self.chars(URLSAFE, self.rng.randint(40, 60)) + "T3BlbkFJ"
                     + self.chars(URLSAFE, self.rng.randint(20, 40)))

    def npm_token(self) -> Value:
        return Value("npm_token", "npm_" + self.chars(B62, 36))

    def pypi_token(self) -> Value:
        return Value("pypi_token", "pypi-AgEIcHlwaS5vcmc" + self.chars(URLSAFE, self.rng.randint(60, 120)))

    def jwt(self, loc: str) -> Value:
        header = {"alg": self.rng.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"}
        if self.rng.random() < 0.3:
            header["kid"] = self.chars(ALNUM, 16)
        iat = self.rng.randint(1_600_000_000, 1_760_000_000)
        payload = {"sub": str(self.rng.randint(1, 10**9)), "name": self.fk(loc).name(), "iat": iat,
                   "exp": iat + self.rng.choice([900, 3600, 86400])}
        if self.rng.random() < 0.4:
            payload["scope"] = self.rng.choice(["read", "read write", "admin"])
        parts = [
            b64url(json.dumps(header, separators=(",", ":")).encode()),
            b64url(json.dumps(payload, separators=(",", ":")).encode()),
            b64url(self.rng.randbytes(32)),
        ]
        return Value("jwt", ".".join(parts))

    def private_key(self, trailing_newline: bool = False) -> Value:
        label, der, width = self.rng.choice([
            ("RSA PRIVATE KEY", lambda n: b"\x30\x82" + n.to_bytes(2, "big") + b"\x02\x01\x00\x02\x82", 64),
            ("PRIVATE KEY", lambda n: b"\x30\x82" + n.to_bytes(2, "big")
             + bytes.fromhex("020100300d06092a864886f70d0101010500"), 64),
            ("EC PRIVATE KEY", lambda n: bytes.fromhex("307702010104"), 64),
            ("OPENSSH PRIVATE KEY", lambda n: b"openssh-key-v1\x00", 70),
        ])
        # Real RSA keys run to 1.2 KB of DER; shorter bodies keep the corpus
        # small and are just as hard to find.
        size = self.rng.randint(90, 130) if label == "EC PRIVATE KEY" else self.rng.randint(150, 450)
        blob = base64.b64encode(der(size) + self.rng.randbytes(size)).decode()
        nl = "\r\n" if self.rng.random() < 0.1 else "\n"
        lines = [blob[i:i + width] for i in range(0, len(blob), width)]
        pem = f"-----BEGIN {label}-----{nl}" + nl.join(lines) + f"{nl}-----END {label}-----"
        text = pem + nl if trailing_newline else pem
        return Value("private_key", text, 0, len(pem))

    def password(self, n_min: int = 12, n_max: int = 32, escapes: bool = True) -> str:
        symbols = "!#$%&()*+,-./:;<=>?@[]^_{|}~"
        if escapes and self.rng.random() < 0.1:
            symbols += '"\\'
        alphabet = ALNUM + symbols
        while True:
            text = self.chars(alphabet, self.rng.randint(n_min, n_max))
            classes = sum([any(c.isupper() for c in text), any(c.islower() for c in text),
                           any(c.isdigit() for c in text), any(c in symbols for c in text)])
            if classes >= 3:
                return text

    def url_credentials(self, loc: str) -> Value:
        f = self.fk(loc)
        pw = self.chars(ALNUM + "-_.~!*", self.rng.randint(8, 28))
        host = self.rng.choice([f.domain_name(), f.hostname(), "db-" + self.chars(string.ascii_lowercase, 6) + ".internal"])
        user = re.sub(r"[^a-z0-9_]", "", f.user_name().lower()) or "app"
        db = self.rng.choice(["app", "prod", "billing", "analytics", "users"])
        scheme = self.rng.choice(["postgres", "postgresql", "mysql", "https", "redis", "amqp", "mongodb+srv"])
        if scheme == "redis":
            head, tail = "redis://:", f"@{host}:6379/{self.rng.randint(0, 15)}"
        elif scheme == "https":
            head, tail = f"https://{user}:", f"@{host}/{self.rng.choice(['api/v1', 'repo.git', 'simple/', ''])}"
        else:
            port = {"postgres": ":5432", "postgresql": ":5432", "mysql": ":3306", "amqp": ":5672", "mongodb+srv": ""}[scheme]
            head, tail = f"{scheme}://{user}:", f"@{host}{port}/{db}"
            if self.rng.random() < 0.3:
                tail += self.rng.choice(["?sslmode=require", "?charset=utf8mb4", "?retryWrites=true"])
        return Value("url_credentials", head + pw + tail, len(head), len(head) + len(pw))

    def json_secret(self) -> Value:
        return Value("json_secret", self.password())

    def national(self, kind: str, bare_digits: bool = False) -> Value:
        if kind == "us_ssn":
            return self.us_ssn(bare_digits)
        return getattr(self, kind)()

    # ---- person names ---------------------------------------------------------

    def name_parts(self, loc: str) -> tuple[list[str], list[str], str]:
        """(given names, surname words, name locale). Most names come from the
        cell's locale; some are romanised Japanese, Chinese, Pakistani
        (Arabic) or Turkish names."""
        rng = self.rng
        if rng.random() < 0.15:
            nloc = rng.choice(ROMANISED_NAME_LOCALES)
            f = self.fk(nloc)
            if nloc in ("ja_JP", "zh_CN"):
                return [f.first_romanized_name()], [f.last_romanized_name()], nloc
            return [f.first_name()], [f.last_name()], nloc
        f = self.fk(loc)
        given = [f.first_name()]
        if rng.random() < 0.1:
            given.append(f.first_name())
        surname = [f.last_name()]
        if loc == "es_ES" and rng.random() < 0.5:
            surname.append(f.last_name())
        if loc in NAME_PARTICLES and rng.random() < 0.2:
            surname = NAME_PARTICLES[loc][rng.randrange(len(NAME_PARTICLES[loc]))].split() + surname
        # Faker's own lists hold a few compound entries ("Mac Donald").
        return [w for g in given for w in g.split()], [w for x in surname for w in x.split()], loc

    def person(self, loc: str, forms: tuple = ("full", "caps", "comma", "initial")) -> Value:
        rng = self.rng
        given, surname, _ = self.name_parts(loc)
        weights = {"full": 6, "caps": 1, "comma": 1, "initial": 1}
        form = rng.choices(list(forms), [weights[f] for f in forms])[0]
        if any(w[0].islower() for w in surname):
            # "van Beeck, Hanna" is how Dutch registers sort, but not a
            # form this corpus labels.
            form = "particle" if form in ("full", "caps", "comma") else form
        if form in ("full", "particle"):
            text = " ".join(given + surname)
        elif form == "caps":
            text = " ".join(given + surname).upper()
        elif form == "comma":
            text = " ".join(surname) + ", " + " ".join(given)
        else:
            text = given[0][0] + ". " + " ".join(surname)
        return Value("person", text, form=form, held_out=not in_lexicon(given + surname))

    def titled(self, loc: str) -> tuple[str, Value]:
        """A title and the name after it: a surname alone or a full name."""
        rng = self.rng
        given, surname, _ = self.name_parts(loc)
        title = rng.choice(TITLES.get(loc[:2], TITLES["en"]))
        words = surname if rng.random() < 0.6 else given + surname
        return title, Value("person", " ".join(words), form="title", held_out=not in_lexicon(words))

    def value(self, kind: str, loc: str, need_shape: bool = False) -> Value:
        if kind == "person":
            return self.person(loc)
        if kind in NATIONAL_KIND_LOCALE:
            return self.national(kind)
        if kind == "phone":
            return self.phone(loc, need_shape)
        if kind in ("email", "card", "iban", "ipv4", "ipv6", "jwt", "url_credentials"):
            return getattr(self, kind)(loc)
        return getattr(self, kind)()

    # ---- hard negatives -----------------------------------------------------

    def negative(self, family: str, loc: str) -> str:
        while True:
            text = self._negative(family, loc)
            d = digits_of(text)
            if d.isdigit():
                if family == "integer" and luhn_ok(d):
                    continue
                if digit_kinds(text):
                    self.rejected["negative:" + family] += 1
                    continue
            if family == "fake_jwt" and jwt_header_is_json(text):
                continue
            return text

    def _negative(self, family: str, loc: str) -> str:
        rng = self.rng
        f = self.fk(loc)
        if family == "uuid":
            text = str(uuid4(rng))
            return text.upper() if rng.random() < 0.2 else text
        if family in ("md5", "sha1", "sha256"):
            text = hashlib.new(family, rng.randbytes(16)).hexdigest()
            return text.upper() if rng.random() < 0.15 else text
        if family == "git_sha":
            text = hashlib.sha1(rng.randbytes(16)).hexdigest()
            return text[: rng.choice([7, 8, 12, 40])]
        if family == "ean13":
            return f.ean13()
        if family == "isbn10":
            return f.isbn10() if rng.random() < 0.7 else f.isbn10(separator="")
        if family == "isbn13":
            return f.isbn13() if rng.random() < 0.6 else f.isbn13(separator="")
        if family == "integer":
            n = rng.randint(6, 19)
            return str(rng.randint(1, 9)) + self.digits(n - 1)
        if family == "date":
            y, m, d = self.date(1950, 2030)
            return rng.choice([f"{y}-{m:02d}-{d:02d}", f"{d:02d}.{m:02d}.{y}", f"{m:02d}/{d:02d}/{y}",
                               f"{y}{m:02d}{d:02d}", f"{d:02d}/{m:02d}/{y}", f"{d}.{m}.{y}"])
        if family == "timestamp":
            y, m, d = self.date(2000, 2030)
            hh, mm, ss = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
            base = f"{y}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}"
            return base + rng.choice(["Z", "+02:00", "-05:00", f".{rng.randint(0, 999999):06d}Z", f".{rng.randint(0, 999):03d}+01:00"])
        if family == "version":
            r = rng.random()
            if r < 0.4:
                return f"{rng.randint(0, 20)}.{rng.randint(0, 30)}.{rng.randint(0, 60)}"
            if r < 0.7:
                return f"v{rng.randint(0, 12)}.{rng.randint(0, 40)}.{rng.randint(0, 20)}"
            if r < 0.85:
                return f"10.0.{rng.randint(10240, 26100)}"
            return f"{rng.randint(1, 5)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}-{rng.choice(['rc1', 'beta.2', 'alpha', 'SNAPSHOT'])}"
        if family == "base64":
            n = rng.choice([30, 30, 24, 48, 64, 96])  # 30 bytes encode to 40 characters, the AWS secret length
            return base64.b64encode(rng.randbytes(n)).decode()
        if family == "order_number":
            return rng.choice([f"ORD-{rng.randint(2019, 2026)}-{rng.randint(0, 999999):06d}",
                               f"INV-{rng.randint(10000, 99999)}", f"PO{rng.randint(100000, 999999)}",
                               f"#{rng.randint(1000, 99999)}"])
        if family == "amount":
            whole = rng.randint(1, 9_999_999)
            cents = rng.randint(0, 99)
            us = f"{whole:,}.{cents:02d}"
            eu = us.replace(",", " ").replace(".", ",").replace(" ", ".")
            return rng.choice([us, eu, f"{whole}.{cents:02d}", f"${us}", f"{eu} €", f"-{us}"])
        if family == "placeholder":
            return rng.choice(PLACEHOLDERS)
        if family == "file_path":
            return rng.choice([f.file_path(depth=rng.randint(1, 4)),
                               "C:\\Users\\" + re.sub(r"\W", "", f.first_name()) + "\\Documents\\" + f.file_name(),
                               "/var/lib/postgresql/16/main/base/" + str(rng.randint(16000, 99999))])
        if family == "url":
            return rng.choice([f.uri(), f.url() + f.uri_path(), f"https://{f.domain_name()}/search?q={f.word()}&page={rng.randint(1, 9)}"])
        if family == "mac_address":
            text = f.mac_address()
            return rng.choice([text, text.upper(), text.replace(":", "-").upper()])
        if family == "time":
            return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}" + rng.choice(["", "", ".123", " UTC"])
        if family == "fake_jwt":
            # Starts like a JWT, but the header is not JSON.
            head = "eyJ" + self.chars(URLSAFE, rng.randint(17, 40))
            return ".".join([head, self.chars(URLSAFE, rng.randint(20, 80)), self.chars(URLSAFE, 43)])
        if family == "bigint_id":
            return str(rng.randint(1, 50_000_000) if rng.random() < 0.7 else rng.randint(10**11, 10**12))
        if family == "epoch":
            t = rng.randint(946_684_800, 1_900_000_000)
            return str(t * 1000 + rng.randint(0, 999)) if rng.random() < 0.3 else str(t)
        if family == "zip_code":
            return f.postcode()
        if family == "person_place":
            r = rng.random()
            if r < 0.3:
                return f.city()
            if r < 0.55:
                return f.street_address()
            return rng.choice(PLACES)
        if family == "person_brand":
            return rng.choice(BRANDS)
        if family == "person_sentence":
            return rng.choice(NAME_WORD_SENTENCES)
        if family == "person_calendar":
            return rng.choice([f.day_of_week(), f.month_name(), f"{f.day_of_week()}, {f.month_name()} {rng.randint(1, 28)}",
                               f"{f.month_name()} {rng.randint(1990, 2030)}"] + CALENDAR_WORDS)
        if family == "person_identifier":
            return rng.choice(IDENTIFIERS)
        if family == "person_company":
            return f.company()
        raise AssertionError(family)


def uuid4(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def base62_crc(body: str) -> str:
    n = zlib.crc32(body.encode())
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = B62[r] + out
    return out.rjust(6, "0")


VERHOEFF_D = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5], [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7], [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3], [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
]
VERHOEFF_P = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4], [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7], [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
]
VERHOEFF_INV = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9]


def verhoeff_check(body: str) -> str:
    c = 0
    for i, d in enumerate(reversed(body)):
        c = VERHOEFF_D[c][VERHOEFF_P[(i + 1) % 8][int(d)]]
    return str(VERHOEFF_INV[c])


# --------------------------------------------------------------------------
# Context phrases. "{}" is where the value goes.

PERSONAL_CONTEXT = {
    "en": {
        "email": ["Contact: {}", "please email me at {}", "reply to {}", "Email: {}", "sent to {} yesterday"],
        "phone": ["call me on {}", "Tel: {}", "Phone: {}", "mobile {}", "reach the office at {}"],
        "card": ["Please charge card {} today", "card number {}", "paid with {}", "CC: {}", "card on file {}"],
        "iban": ["IBAN: {}", "please transfer to {}", "account {}", "refund to IBAN {} please"],
    },
    "de": {
        "email": ["Kontakt: {}", "E-Mail: {}", "bitte an {} schreiben", "Antwort an {}"],
        "phone": ["Telefon: {}", "ruf mich unter {} an", "Tel.: {}", "Handy {}"],
        "card": ["Kartennummer {}", "bitte Karte {} belasten", "Kreditkarte: {}"],
        "iban": ["bitte überweisen auf {}", "IBAN {}", "Bankverbindung: {}", "Rückerstattung an {}"],
    },
    "fr": {
        "email": ["Écrivez à {}", "Courriel : {}", "contact : {}", "répondre à {}"],
        "phone": ["Tél. : {}", "appelez le {}", "portable {}", "numéro : {}"],
        "card": ["carte bancaire {}", "débitez la carte {} aujourd'hui", "n° de carte : {}"],
        "iban": ["virement sur {}", "IBAN : {}", "RIB {}", "remboursement sur le compte {}"],
    },
    "es": {
        "email": ["Correo: {}", "escríbeme a {}", "contacto: {}", "respuesta a {}"],
        "phone": ["Teléfono: {}", "llámame al {}", "móvil {}", "Tel. {}"],
        "card": ["tarjeta {}", "cobra la tarjeta {} hoy", "número de tarjeta: {}"],
        "iban": ["transferencia a {}", "IBAN: {}", "cuenta {}", "devolución a la cuenta {}"],
    },
    "it": {
        "email": ["Contatto: {}", "scrivi a {}", "e-mail: {}", "rispondere a {}"],
        "phone": ["Tel.: {}", "chiamami al {}", "cellulare {}", "telefono {}"],
        "card": ["carta di credito {}", "addebitare la carta {} oggi", "numero carta: {}"],
        "iban": ["bonifico su {}", "IBAN: {}", "conto {}", "rimborso su {}"],
    },
    "nl": {
        "email": ["Contact: {}", "mail naar {}", "e-mailadres: {}", "antwoord aan {}"],
        "phone": ["Telefoon: {}", "bel {}", "mobiel {}", "Tel. {}"],
        "card": ["creditcard {}", "kaartnummer {}", "graag kaart {} belasten"],
        "iban": ["rekeningnummer {}", "IBAN: {}", "overmaken naar {}", "terugbetaling op {}"],
    },
    "pl": {
        "email": ["Kontakt: {}", "napisz na {}", "e-mail: {}", "odpowiedz na {}"],
        "phone": ["Tel.: {}", "zadzwoń pod {}", "telefon {}", "komórka {}"],
        "card": ["karta {}", "numer karty: {}", "obciążyć kartę {} dzisiaj"],
        "iban": ["numer konta {}", "IBAN: {}", "przelew na {}", "zwrot na konto {}"],
    },
    "pt": {
        "email": ["E-mail: {}", "fale com {}", "contato: {}", "responder para {}"],
        "phone": ["Telefone: {}", "ligue para {}", "celular {}", "Tel.: {}"],
        "card": ["cartão {}", "cobrar no cartão {} hoje", "número do cartão: {}"],
        "iban": ["transferir para {}", "IBAN: {}", "conta {}", "reembolso na conta {}"],
    },
    "sv": {
        "email": ["Kontakt: {}", "mejla {}", "e-post: {}", "svara till {}"],
        "phone": ["Telefon: {}", "ring {}", "mobil {}", "Tel. {}"],
        "card": ["kortnummer {}", "debitera kortet {} idag", "kort: {}"],
        "iban": ["konto {}", "IBAN: {}", "betala till {}", "återbetalning till {}"],
    },
    "fi": {
        "email": ["Yhteystiedot: {}", "sähköposti {}", "vastaa osoitteeseen {}", "s-posti: {}"],
        "phone": ["Puhelin: {}", "soita {}", "puh. {}", "matkapuhelin {}"],
        "card": ["kortin numero {}", "veloita kortilta {} tänään", "luottokortti: {}"],
        "iban": ["tilinumero {}", "IBAN: {}", "maksa tilille {}", "palautus tilille {}"],
    },
}

# Names after a context word ("cue") and in text without one ("plain").
PERSON_CONTEXT = {
    "en": {"cue": ["Customer: {}", "Contact {} for details", "signed by {}", "Dear {},", "Patient name: {}",
                   "assigned to {}", "Name: {}"],
           "plain": ["{} called about the order", "Ask {} about it", "Meeting with {} on site", "{} approved the refund",
                     "Spoke to {} yesterday", "Forwarded to {} for review"]},
    "de": {"cue": ["Ansprechpartner: {}", "Kunde: {}", "Name: {}", "Kontakt: {}"],
           "plain": ["Bitte {} zurückrufen", "Rückfrage von {} erhalten", "Termin mit {} vereinbart", "{} hat angerufen"]},
    "fr": {"cue": ["Nom : {}", "Contact : {}", "Client : {}"],
           "plain": ["Merci de rappeler {}", "Rendez-vous avec {} demain", "{} a appelé ce matin"]},
    "es": {"cue": ["Nombre: {}", "Cliente: {}", "Contacto: {}"],
           "plain": ["Llamar a {} mañana", "Reunión con {} el lunes", "{} pidió un reembolso"]},
    "it": {"cue": ["Nome: {}", "Cliente: {}", "Contatto: {}"],
           "plain": ["Richiamare {} domani", "Incontro con {} in ufficio", "{} ha chiamato"]},
    "nl": {"cue": ["Naam: {}", "Klant: {}", "Contactpersoon: {}"],
           "plain": ["Graag {} terugbellen", "Afspraak met {} gemaakt", "{} heeft gebeld"]},
    "pl": {"cue": ["Imię i nazwisko: {}", "Klient: {}", "Kontakt: {}"],
           "plain": ["Proszę oddzwonić do {}", "Spotkanie z {} jutro", "{} dzwonił rano"]},
    "pt": {"cue": ["Nome: {}", "Cliente: {}", "Contato: {}"],
           "plain": ["Ligar para {} amanhã", "Reunião com {} na segunda", "{} pediu reembolso"]},
    "sv": {"cue": ["Namn: {}", "Kund: {}", "Kontaktperson: {}"],
           "plain": ["Ring {} i morgon", "Möte med {} på kontoret", "{} ringde i dag"]},
    "fi": {"cue": ["Nimi: {}", "Asiakas: {}", "Yhteyshenkilö: {}"],
           "plain": ["Soita {} huomenna", "Tapaaminen {} kanssa", "{} soitti aamulla"]},
}

# A title and a name: "{}" is where the title and the name go.
TITLE_SENTENCES = {
    "en": ["Please call {} back", "Dear {},", "{} will join the meeting", "Appointment with {} at noon"],
    "de": ["Sehr geehrte(r) {},", "Bitte {} zurückrufen", "{} kommt morgen"],
    "fr": ["Bonjour {},", "Merci de rappeler {}", "{} arrive demain"],
    "es": ["Estimado {},", "Llamar a {}", "{} llega mañana"],
    "it": ["Gentile {},", "Richiamare {}", "{} arriva domani"],
    "nl": ["Geachte {},", "Graag {} terugbellen", "{} komt morgen"],
    "pl": ["Szanowny {},", "Proszę oddzwonić: {}", "{} przyjdzie jutro"],
    "pt": ["Prezado {},", "Ligar para {}", "{} chega amanhã"],
    "sv": ["Hej {},", "Ring {}", "{} kommer i morgon"],
    "fi": ["Hei {},", "Soita {}", "{} tulee huomenna"],
}

NETWORK_CONTEXT = {
    "ipv4": ["connection from {} refused", "host {}", "IP: {}", "client {} timed out", "connect to {}:5432", "X-Forwarded-For: {}"],
    "ipv6": ["connection from {} refused", "host {}", "IP: {}", "listening on [{}]:8080", "peer {} closed"],
}

NATIONAL_CONTEXT = {
    "us_ssn": ["my SSN is {}", "SSN: {}", "social security number {}", "SSN {} on file"],
    "uk_nino": ["National Insurance number {}", "NI number: {}", "NINO {}"],
    "de_tax_id": ["Steuer-ID: {}", "Steueridentifikationsnummer {}", "IdNr. {}"],
    "fr_nir": ["numéro de sécurité sociale {}", "NIR : {}", "n° sécu {}"],
    "es_dni": ["DNI {}", "NIF: {}", "con DNI {}"],
    "es_nie": ["NIE {}", "número de extranjero: {}", "NIE: {}"],
    "it_fiscal_code": ["codice fiscale {}", "C.F.: {}", "CF {}"],
    "nl_bsn": ["BSN: {}", "burgerservicenummer {}", "BSN {}"],
    "pl_pesel": ["PESEL: {}", "numer PESEL {}", "PESEL {}"],
    "br_cpf": ["CPF: {}", "CPF nº {}", "inscrito no CPF {}"],
    "in_aadhaar": ["Aadhaar: {}", "Aadhaar number {}", "UID {}"],
    "ca_sin": ["SIN: {}", "social insurance number {}", "SIN {}"],
    "se_personnummer": ["personnummer {}", "pnr: {}", "Personnummer: {}"],
    "fi_hetu": ["henkilötunnus {}", "hetu: {}", "HETU {}"],
}

SECRET_CONTEXT = {
    "aws_access_key": ["aws_access_key_id = {}", "AWS_ACCESS_KEY_ID={}", "access key {}", "using key {}"],
    "github_token": ["export GITHUB_TOKEN={}", "Authorization: token {}", "git clone https://{}@github.com/acme/api.git", "gh auth login --with-token {}"],
    "slack_token": ["SLACK_BOT_TOKEN={}", "slack token {}", "Authorization: Bearer {}"],
    "stripe_key": ["STRIPE_SECRET_KEY={}", "stripe key {}", "curl -u {}: https://api.stripe.com/v1/charges"],
    "gitlab_token": ["GITLAB_TOKEN={}", "PRIVATE-TOKEN: {}", "gitlab token {}"],
    "google_api_key": ["GOOGLE_API_KEY={}", "maps?key={}&q=here", "api key {}"],
    "openai_key": ["OPENAI_API_KEY={}", "Authorization: Bearer {}", "openai key {}"],
    "npm_token": ["//registry.npmjs.org/:_authToken={}", "NPM_TOKEN={}", "npm token {}"],
    "pypi_token": ["TWINE_PASSWORD={}", "password = {}", "pypi token {}"],
    "jwt": ["Authorization: Bearer {}", "id_token={}", "Cookie: session={}; Path=/", "jwt {}"],
    "url_credentials": ["DATABASE_URL={}", "connecting to {}", "dsn: {}", "url = \"{}\""],
}

AWS_SECRET_CONTEXT = ["aws_secret_access_key = {}", "AWS_SECRET_ACCESS_KEY={}", "export AWS_SECRET_ACCESS_KEY=\"{}\"",
                      "aws_secret_access_key: {}"]

# Wrappers for values without a context word.
BARE_WRAPPERS = ["{}", "{}", "{}", "({})", "\"{}\"", "'{}'", "[{}]", "<{}>"]

# Kinds that a reader can only recognise with a context word.
NEEDS_CONTEXT = {"aws_secret_key"}

NEGATIVE_CONTEXT = {
    "uuid": ["request {} completed", "trace_id={}", "session {}"],
    "md5": ["md5 {}", "checksum {}", "etag \"{}\""],
    "sha1": ["sha1 {}", "fingerprint {}"],
    "sha256": ["sha256:{}", "digest {}", "checksum {}"],
    "ean13": ["EAN {}", "barcode {}", "GTIN {}"],
    "isbn10": ["ISBN {}", "ISBN-10: {}"],
    "isbn13": ["ISBN {}", "ISBN-13: {}"],
    "integer": ["ref {}", "reference number {}", "ticket {}", "document no. {}"],
    "date": ["due {}", "valid until {}", "born {}"],
    "timestamp": ["at {}", "updated_at={}", "since {}"],
    "version": ["upgraded to {}", "version {}", "running {}"],
    "base64": ["payload {}", "data={}", "blob: {}"],
    "order_number": ["order {} shipped", "invoice {}", "re: {}"],
    "amount": ["total {}", "balance: {}", "charged {}"],
    "git_sha": ["commit {}", "fixed in {}", "rev {}"],
    "file_path": ["see {}", "wrote {}", "path: {}"],
    "url": ["docs at {}", "see {}", "link: {}"],
    "mac_address": ["device {}", "MAC {}", "hwaddr {}"],
    "time": ["at {}", "opens {}", "started {}"],
    "fake_jwt": ["Authorization: Bearer {}", "token {}"],
    "bigint_id": ["user id {}", "row {}", "customer #{}"],
    "epoch": ["ts={}", "created {}", "expires {}"],
    "zip_code": ["zip {}", "postcode {}", "PLZ {}"],
    "person_place": ["shipped to {}", "office in {}", "address: {}", "near {}"],
    "person_brand": ["drives a {}", "product: {}", "brand {}", "sold by {}"],
    "person_sentence": ["{}", "note: {}", "{} thanks"],
    "person_calendar": ["due {}", "next {}", "on {}"],
    "person_identifier": ["column {}", "field {} is required", "select {} from t"],
    "person_company": ["vendor {}", "supplier: {}", "invoice from {}"],
}

# Hard negatives for the person detector: capitalised words that are no
# one's name, many of them made of words that are names elsewhere.
PLACES = [
    "Washington Street", "Victoria Station", "Kingston upon Thames", "Paris", "Jordan Valley", "Santa Barbara",
    "St. Louis", "Port Elizabeth", "Charlotte", "Victoria Park", "Georgetown", "San José", "Las Vegas",
    "Mount Pleasant", "Lake Geneva", "Florence", "Marienplatz", "Alexanderplatz", "Rue de Rivoli", "Gare du Nord",
    "Via Roma", "Piazza Navona", "Calle Mayor", "Avenida Paulista", "Praça da Sé", "Kalverstraat", "Ulica Długa",
    "Drottninggatan", "Mannerheimintie", "Queen Street", "King's Cross", "Elizabeth Line", "Prince Albert Road",
    "Fort Worth", "San Antonio", "Virginia Beach", "Georgia", "Adelaide", "Regina", "Victoria", "Darwin",
]
BRANDS = [
    "Ford Focus", "Tesla Model 3", "Johnson & Johnson", "Mercedes-Benz", "Procter & Gamble", "Dr Pepper",
    "Dr. Martens", "Marks & Spencer", "Toyota Corolla", "Honda Civic", "Apple Watch", "Microsoft Teams",
    "Google Chrome", "Amazon Prime", "Coca-Cola", "Harley-Davidson", "Land Rover", "Aston Martin",
    "Volkswagen Golf", "Renault Clio", "Fiat Panda", "Skoda Octavia", "Peugeot 208", "Seat Ibiza",
    "Samsung Galaxy", "Sony Walkman", "Nintendo Switch", "PlayStation 5", "Air Jordan", "Chevrolet Malibu",
]
NAME_WORD_SENTENCES = [
    "Will you send the invoice today?", "May I ask for a refund?", "Mark the box as fragile.",
    "Grace period ends on Friday.", "Rose garden maintenance is due.", "Bill the customer monthly.",
    "Hope to hear from you soon.", "Frank feedback is welcome.", "Chase the supplier for an answer.",
    "Max retries exceeded.", "Jack up the price by two percent.", "Faith in the process is low.",
    "Sterling Silver Ring", "Will Call Pickup", "May Sale Starts Now", "Summer Collection",
    "Grant Application Form", "Victoria Sponge Cake", "Earl Grey Tea", "Hunter Green Paint",
    "Amber Alert", "Ruby on Rails", "Pearl Harbor", "Crystal Palace", "Jasmine Rice", "Iris Scanner",
    "Bitte Herrn zurückrufen.", "Merci de votre commande.", "Gracias por su compra.", "Grazie mille.",
]
CALENDAR_WORDS = ["Montag", "Dienstag", "Mittwoch", "Lundi", "Mardi", "Lunes", "Martes", "Lunedì", "Maandag",
                  "Poniedziałek", "Segunda-feira", "Måndag", "Maanantai", "August", "June", "April", "May"]
IDENTIFIERS = [
    "first_name", "last_name", "FirstName", "LastName", "CUSTOMER_NAME", "contact_person_id", "JohnSmith",
    "john.smith", "jsmith", "user_name", "FullName", "created_by", "AssigneeName", "PatientName", "owner_id",
    "ContactPerson", "nameFirst", "nameLast", "ADDRESS_LINE_1", "SMITH_J", "mariaGarcia",
]

PLACEHOLDER_CONTEXT = {
    "AKIAIOSFODNN7EXAMPLE": ["aws_access_key_id = {}", "AWS_ACCESS_KEY_ID={}"],
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY": ["aws_secret_access_key = {}", "AWS_SECRET_ACCESS_KEY={}",
                                                 "aws_access_key_id = AKIAIOSFODNN7EXAMPLE aws_secret_access_key = {}"],
    "${API_KEY}": ["api_key: {}", "Authorization: Bearer {}"],
    "{{ token }}": ["token: {}", "GITHUB_TOKEN={}"],
    "ghp_" + "x" * 36: ["export GITHUB_TOKEN={}", "token {}"],
    "sk_live_" + "X" * 24: ["STRIPE_SECRET_KEY={}", "stripe key {}"],
    "postgres://user:${DB_PASSWORD}@host/db": ["DATABASE_URL={}", "dsn: {}"],
    "changeme": ["password: {}", "default password is {}", "password={}"],
}

# JSON keys a negative value would sit under.
NEGATIVE_KEYS = {
    "uuid": ["request_id", "trace_id", "uuid"], "md5": ["md5", "etag"], "sha1": ["sha1", "fingerprint"],
    "sha256": ["sha256", "digest", "checksum"], "ean13": ["ean", "gtin"], "isbn10": ["isbn"], "isbn13": ["isbn"],
    "integer": ["reference", "ticket_no", "external_ref"], "date": ["due", "birth_date", "valid_until"],
    "timestamp": ["updated_at", "ts"], "version": ["version", "agent_version"], "base64": ["payload", "blob", "signature"],
    "order_number": ["order_ref", "invoice"], "amount": ["amount_text", "balance"], "git_sha": ["commit", "revision"],
    "file_path": ["path", "file"], "url": ["homepage", "callback_url"], "mac_address": ["mac", "hwaddr"],
    "time": ["opens_at", "time"], "fake_jwt": ["bearer", "auth"], "bigint_id": ["user_id", "row_id"],
    "epoch": ["created_epoch", "expires"], "zip_code": ["zip", "postcode"],
    "person_place": ["city", "street", "venue", "destination"], "person_brand": ["brand", "product", "model"],
    "person_sentence": ["note", "comment", "title"], "person_calendar": ["weekday", "month", "due"],
    "person_identifier": ["column", "field"], "person_company": ["company", "vendor", "supplier"],
}

PLACEHOLDER_KEYS = {
    "AKIAIOSFODNN7EXAMPLE": ["AccessKeyId", "aws_access_key_id"],
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY": ["SecretAccessKey", "aws_secret_access_key"],
    "${API_KEY}": ["api_key"], "{{ token }}": ["token"], "ghp_" + "x" * 36: ["GITHUB_TOKEN", "github_token"],
    "sk_live_" + "X" * 24: ["STRIPE_SECRET_KEY"], "postgres://user:${DB_PASSWORD}@host/db": ["database_url", "dsn"],
    "changeme": ["password", "secret"],
}

# Kinds that documents keep lists of.
LIST_KINDS = ("email", "phone", "ipv4", "ipv6", "iban", "card")

# JSON keys a positive value would sit under.
VALUE_KEYS = {
    "email": ["email", "contact_email", "e-mail", "mail"], "phone": ["phone", "mobile", "tel", "phone_number"],
    "card": ["card_number", "pan", "cc"], "iban": ["iban", "account", "payout_account"],
    "ipv4": ["ip", "client_ip", "remote_addr", "source"], "ipv6": ["ip", "client_ip", "remote_addr", "source_v6"],
    "us_ssn": ["ssn", "national_id"], "uk_nino": ["nino", "ni_number"], "de_tax_id": ["steuer_id", "tax_id"],
    "fr_nir": ["nir", "numero_secu"], "es_dni": ["dni", "nif"], "es_nie": ["nie"], "it_fiscal_code": ["codice_fiscale", "cf"],
    "nl_bsn": ["bsn"], "pl_pesel": ["pesel"], "br_cpf": ["cpf"], "in_aadhaar": ["aadhaar", "uid"], "ca_sin": ["sin"],
    "se_personnummer": ["personnummer"], "fi_hetu": ["hetu", "henkilotunnus"],
    "aws_access_key": ["aws_access_key_id", "AccessKeyId", "AWS_ACCESS_KEY_ID"],
    "aws_secret_key": ["aws_secret_access_key", "SecretAccessKey", "AWS_SECRET_ACCESS_KEY"],
    "github_token": ["GITHUB_TOKEN", "github_token", "GH_TOKEN"], "slack_token": ["SLACK_BOT_TOKEN", "slack_token"],
    "stripe_key": ["STRIPE_SECRET_KEY", "stripe_key"], "gitlab_token": ["GITLAB_TOKEN", "gitlab_token"],
    "google_api_key": ["GOOGLE_API_KEY", "maps_key"], "openai_key": ["OPENAI_API_KEY", "openai_key"],
    "npm_token": ["NPM_TOKEN", "npm_token"], "pypi_token": ["PYPI_TOKEN", "TWINE_PASSWORD"],
    "jwt": ["id_token", "access_token", "authorization"], "private_key": ["private_key", "ssh_key", "tls_key"],
    "url_credentials": ["database_url", "dsn", "DATABASE_URL", "broker_url"], "json_secret": JSON_SECRET_KEYS,
    "person": ["full_name", "customer_name", "contact_person", "author", "assignee", "patient"],
}

NOTES = [
    'Customer said "call me after 5" \\ confirmed',
    "Zustellung: Hintertür, bitte klingeln",
    "Livraison prévue à 14h — merci",
    "Tab\tseparated\tnote",
    "line one\nline two",
    "ünïcödé ✓ 🚚",
    "Entrega após às 18h",
]


class Builder:
    def __init__(self, gen: Gen):
        self.g = gen
        self.rng = gen.rng
        self.next_id = 100_000

    # ---- kind choice ------------------------------------------------------

    def first_kind(self, shape: str) -> str:
        kinds = [k for k in ALL_KINDS if not (shape == "bare" and k in NEEDS_CONTEXT)]
        weights = [KIND_WEIGHT[k] for k in kinds]
        if shape == "json":
            kinds.append("json_secret")
            weights.append(1.5)
        return self.rng.choices(kinds, weights)[0]

    def more_kinds(self, first: str, loc: str, shape: str, n: int) -> list[str]:
        pool = GENERIC_KINDS + SECRET_KINDS + [k for k, l in NATIONAL_KIND_LOCALE.items() if l == loc]
        if shape == "json":
            pool = pool + ["json_secret"]
        return [first] + [self.rng.choice(pool) for _ in range(n - 1)]

    def locale_for(self, kind: str) -> str:
        return NATIONAL_KIND_LOCALE.get(kind) or self.rng.choice(LOCALE_NAMES)

    # ---- cells -------------------------------------------------------------

    def cell(self) -> Cell:
        rng = self.rng
        r = rng.random()
        shape = "bare" if r < 0.35 else "text" if r < 0.70 else "json"
        if rng.random() < 0.25:
            family = rng.choice(NEGATIVE_FAMILIES)
            loc = rng.choice(LOCALE_NAMES)
            value = self.g.negative(family, loc)
            return getattr(self, f"negative_{shape}")(family, value, loc)
        first = self.first_kind(shape)
        loc = self.locale_for(first)
        if shape == "bare":
            return self.bare(first, loc)
        n = rng.choice([1, 1, 2, 2, 3]) if shape == "text" else rng.choice([1, 1, 2, 2, 3, 3])
        kinds = self.more_kinds(first, loc, shape, n)
        return self.text(kinds, loc) if shape == "text" else self.json(kinds, loc)

    def bare(self, kind: str, loc: str) -> Cell:
        if kind == "private_key":
            value = self.g.private_key(trailing_newline=self.rng.random() < 0.3)
        else:
            value = self.g.value(kind, loc, need_shape=True)
        text, labels = render_plain([value])
        return Cell("bare", loc, text, labels)

    def sentence(self, loc: str) -> str:
        return self.g.fk(loc).sentence(nb_words=self.rng.randint(3, 8))

    def phrase(self, kind: str, loc: str) -> Segments:
        """One value in words, with or without a context word."""
        rng = self.rng
        lang = LOCALES[loc][1]
        with_context = rng.random() < 0.7
        if kind == "aws_secret_key":
            secret = self.g.aws_secret_key()
            if rng.random() < 0.35:
                key_id = self.g.aws_access_key()
                joiner = rng.choice(["\naws_secret_access_key = ", " / ", " secret ", ":"])
                return [rng.choice(["aws_access_key_id = ", "key ", "AWS creds "]), key_id, joiner, secret]
            return template(rng.choice(AWS_SECRET_CONTEXT), secret)
        if kind == "us_ssn" and with_context and rng.random() < 0.35:
            # Nine bare digits are an SSN only right after the word.
            return template(rng.choice(["my SSN is {}", "SSN: {}", "SSN {}", "social security number {}",
                                        "social security number: {}"]), self.g.us_ssn(bare_digits=True))
        if kind == "private_key":
            key = self.g.private_key()
            return [rng.choice(["key:\n", "Here is the deploy key:\n", "id_rsa\n", "\n"]), key, "\n"]
        if kind == "person":
            lang = lang if lang in PERSON_CONTEXT else "en"
            r = rng.random()
            if r < 0.25:
                title, value = self.g.titled(loc)
                head, tail = rng.choice(TITLE_SENTENCES[lang]).split("{}")
                return [s for s in (head + title + " ", value, tail) if s != ""]
            value = self.g.person(loc, forms=("full", "full", "caps", "initial"))
            if value.form == "caps":
                # Shouted names come in shouted text.
                return template(rng.choice(PERSON_CONTEXT[lang]["cue"]).upper(), value)
            return template(rng.choice(PERSON_CONTEXT[lang]["cue" if with_context else "plain"]), value)
        if kind == "phone":
            value = self.g.phone(loc, need_shape=not with_context)
            if with_context:
                return template(rng.choice(PERSONAL_CONTEXT[lang]["phone"]), value)
            return template(rng.choice(BARE_WRAPPERS), value)
        value = self.g.value(kind, loc)
        if not with_context:
            return template(rng.choice(BARE_WRAPPERS), value)
        if kind in PERSONAL_CONTEXT[lang]:
            ctx = PERSONAL_CONTEXT[lang][kind]
        else:
            ctx = NETWORK_CONTEXT.get(kind) or NATIONAL_CONTEXT.get(kind) or SECRET_CONTEXT[kind]
        return template(rng.choice(ctx), value)

    def text(self, kinds: list[str], loc: str) -> Cell:
        rng = self.rng
        segments: Segments = []
        if rng.random() < 0.6:
            segments.append(self.sentence(loc) + " ")
        for i, kind in enumerate(kinds):
            if i:
                segments.append(rng.choice([" ", ", ", "; ", ". ", " " + self.sentence(loc) + " ", "\n"]))
            segments.extend(self.phrase(kind, loc))
        if rng.random() < 0.5:
            segments.append(rng.choice([". ", " ", "! ", ".\n"]) + self.sentence(loc))
        text, labels = render_plain(segments)
        return Cell("text", loc, text, labels)

    def json_value(self, kind: str, loc: str):
        """(key, Slot) for one positive value in a JSON document."""
        rng = self.rng
        key = rng.choice(VALUE_KEYS[kind])
        if kind == "private_key":
            return key, Slot([self.g.private_key(trailing_newline=rng.random() < 0.6)])
        if kind == "jwt" and key == "authorization":
            return key, Slot(["Bearer ", self.g.jwt(loc)])
        if kind == "aws_secret_key":
            return key, Slot([self.g.aws_secret_key()])
        if kind == "json_secret":
            return key, Slot([self.g.json_secret()])
        if kind in ("email", "ipv4", "ipv6", "phone", "person") and rng.random() < 0.3:
            # Inside a free-text field of the document.
            return rng.choice(["msg", "note", "comment", "description"]), Slot(self.phrase(kind, loc))
        if kind == "phone":
            return key, Slot([self.g.phone(loc, need_shape=True)])
        return key, Slot([self.g.value(kind, loc)])

    def json(self, kinds: list[str], loc: str) -> Cell:
        rng = self.rng
        doc, containers = self.json_skeleton(loc)
        for kind in kinds:
            if kind == "aws_secret_key" and rng.random() < 0.5:
                # A credentials object, the way AWS tooling prints it.
                target = rng.choice(containers)
                creds = {"AccessKeyId": Slot([self.g.aws_access_key()]),
                         "SecretAccessKey": Slot([self.g.aws_secret_key()]),
                         "Expiration": self.iso_time()}
                put(target, "credentials", creds, rng)
                continue
            key, slot = self.json_value(kind, loc)
            target = rng.choice(containers)
            if kind == "json_secret":
                if isinstance(target, dict) and key in target:
                    # Renaming the key would take it off the secret-key list.
                    put(target, "auth", {key: slot}, rng)
                else:
                    put(target, key, slot, rng, as_dict_only=True)
            elif kind in LIST_KINDS and rng.random() < 0.2:
                # Contact lists, payment methods, address histories.
                second = Slot([self.g.value(kind, loc, need_shape=True)])
                put(target, key + "s", [slot, second], rng, as_dict_only=True)
            else:
                put(target, key, slot, rng)
        text, labels = render_json(doc, rng)
        return Cell("json", loc, text, labels)

    def iso_time(self) -> str:
        y, m, d = self.g.date(2019, 2026)
        return f"{y}-{m:02d}-{d:02d}T{self.rng.randint(0, 23):02d}:{self.rng.randint(0, 59):02d}:{self.rng.randint(0, 59):02d}Z"

    def json_skeleton(self, loc: str, names: bool = True):
        """A realistic document with benign fields, and the containers (at
        depths 1 to 3) that values may be put into."""
        rng = self.rng
        f = self.g.fk(loc)
        self.next_id += rng.randint(1, 40)
        kind = rng.choice(["customer", "order", "log", "config", "events"])
        if kind == "customer":
            contact: dict = {}
            address = {"street": f.street_address(), "city": f.city(), "postcode": f.postcode()}
            # A negative cell has no labels, so no names either.
            customer = {"name": Slot([self.g.person(loc)]) if names else f"C-{self.next_id}", "locale": loc,
                        "contact": contact, "address": address}
            doc = {"id": self.next_id, "type": "customer", "customer": customer,
                   "tags": rng.sample(["vip", "b2b", "newsletter", "churn-risk", "trial"], rng.randint(0, 3)),
                   "created_at": self.iso_time(), "updated_by": str(uuid4(rng))}
            return doc, [doc, customer, contact, address]
        if kind == "order":
            billing: dict = {"name": Slot([self.g.person(loc)])} if names else {"ref": f"B-{self.next_id}"}
            items = [{"sku": f"SKU-{rng.randint(1000, 99999)}", "qty": rng.randint(1, 5),
                      "price": round(rng.uniform(1, 500), 2)} for _ in range(rng.randint(1, 3))]
            payment: dict = {"method": rng.choice(["card", "sepa", "invoice"])}
            doc = {"order_id": f"ORD-{rng.randint(2020, 2026)}-{rng.randint(0, 999999):06d}",
                   "total": {"amount": round(sum(i["price"] * i["qty"] for i in items), 2), "currency": rng.choice(["EUR", "USD", "GBP", "BRL", "SEK", "PLN", "INR"])},
                   "items": items, "billing": billing, "payment": payment, "note": rng.choice(NOTES)}
            return doc, [doc, billing, payment, items[0]]
        if kind == "log":
            user: dict = {"id": self.next_id}
            client: dict = {"agent": rng.choice(["curl/8.5.0", "python-requests/2.32.3", "Go-http-client/2.0", "okhttp/4.12.0"])}
            ctx = {"client": client, "user": user}
            doc = {"ts": self.iso_time(), "level": rng.choice(["INFO", "WARN", "ERROR", "DEBUG"]),
                   "request_id": str(uuid4(rng)), "msg": self.sentence(loc), "ctx": ctx,
                   "duration_ms": rng.randint(1, 30000)}
            return doc, [doc, ctx, user, client]
        if kind == "config":
            env: dict = {"NODE_ENV": "production", "LOG_LEVEL": rng.choice(["info", "debug"])}
            database: dict = {"host": f.hostname(), "port": rng.choice([5432, 3306, 6432]), "pool": rng.randint(2, 50)}
            doc = {"service": f.word() + "-" + rng.choice(["api", "worker", "gateway"]),
                   "version": f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 40)}",
                   "replicas": rng.randint(1, 12), "env": env, "database": database,
                   "features": {"beta": rng.random() < 0.5, "regions": rng.sample(["eu-west-1", "us-east-1", "ap-south-1"], 2)}}
            return doc, [doc, env, database, doc["features"]]
        # A top-level array of events.
        events = []
        for _ in range(rng.randint(2, 3)):
            events.append({"event": rng.choice(["signup", "login", "purchase", "refund", "password_reset"]),
                           "at": self.iso_time(), "user_id": self.next_id + rng.randint(1, 999),
                           "data": {"source": rng.choice(["web", "ios", "android"])}})
        return events, [e["data"] for e in events] + events

    # ---- negative cells ---------------------------------------------------

    def negative_bare(self, family: str, value: str, loc: str) -> Cell:
        return Cell("bare", loc, value, [], family)

    def negative_text(self, family: str, value: str, loc: str) -> Cell:
        rng = self.rng
        if family == "placeholder":
            ctx = rng.choice(PLACEHOLDER_CONTEXT[value])
        elif rng.random() < 0.7:
            ctx = rng.choice(NEGATIVE_CONTEXT[family])
        else:
            ctx = rng.choice(BARE_WRAPPERS)
        segments = []
        if rng.random() < 0.7:
            segments.append(self.sentence(loc) + " ")
        segments.append(ctx.format(value))
        if rng.random() < 0.5:
            segments.append(". " + self.sentence(loc))
        return Cell("text", loc, "".join(segments), [], family)

    def negative_json(self, family: str, value: str, loc: str) -> Cell:
        rng = self.rng
        doc, containers = self.json_skeleton(loc, names=False)
        if family == "placeholder":
            key = rng.choice(PLACEHOLDER_KEYS[value])
        else:
            key = rng.choice(NEGATIVE_KEYS[family])
        put(rng.choice(containers), key, value, rng)
        text, _ = render_json(doc, rng)
        return Cell("json", loc, text, [], family)


def template(tpl: str, value: Value) -> Segments:
    head, tail = tpl.split("{}")
    return [s for s in (head, value, tail) if not (isinstance(s, str) and s == "")]


def put(container, key: str, value, rng: random.Random, as_dict_only: bool = False) -> None:
    if isinstance(container, list):
        container.append({key: value} if as_dict_only or rng.random() < 0.6 else value)
        return
    while key in container:
        key += "_2"
    container[key] = value


# --------------------------------------------------------------------------
# Checks on a finished cell.

# What a value of each kind looks like, loosely; outside the labels a cell
# must not hold any of it. Digit runs count only at word boundaries: a run
# inside a hex hash is part of the hash, and staying out of it is the
# detectors' job.
SECRET_LIKE = re.compile(
    r"(?:AKIA|ASIA)[A-Z2-7]{16}|gh[pousr]_[A-Za-z0-9]{36}|github_pat_\w{82}|xox[bp]-\d+-|[sr]k_(?:live|test)_[A-Za-z0-9]{20}"
    r"|glpat-[\w-]{20}|AIza[\w-]{35}|T3BlbkFJ|npm_[A-Za-z0-9]{36}|pypi-AgEI|eyJ[\w-]+\.[\w-]+\.|-----BEGIN"
)
EMAIL_LIKE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
IPV4_LIKE = re.compile(r"(?<![\d.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?!\.?\d)")
DIGIT_RUN = re.compile(r"(?<![A-Za-z0-9])\d+(?![A-Za-z0-9])")
IBAN_LIKE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}[A-Z0-9]{11,30}(?![A-Za-z0-9])")
SSN_LIKE = re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])")


def unescape_json_piece(piece: str) -> str:
    return json.loads('"' + piece + '"')


SECRET_FORMATS = {
    "aws_access_key": r"(?:AKIA|ASIA)[A-Z2-7]{16}",
    "aws_secret_key": r"[A-Za-z0-9+/]{40}",
    "github_token": r"gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}",
    "slack_token": r"xox[bp]-\d{10,13}-\d{10,13}-[A-Za-z0-9]{24}",
    "stripe_key": r"(?:sk_live|rk_live|sk_test)_[A-Za-z0-9]{24,99}",
    "gitlab_token": r"glpat-[\w-]{20}",
    "google_api_key": r"AIza[\w-]{35}",
    "openai_key": r"sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}|sk-proj-[\w-]{40,60}T3BlbkFJ[\w-]{20,40}",
    "npm_token": r"npm_[A-Za-z0-9]{36}",
    "pypi_token": r"pypi-AgEIcHlwaS5vcmc[\w-]{60,120}",
}

NATIONAL_ORACLES = {
    "us_ssn": std_ssn.is_valid, "uk_nino": nino_ok, "de_tax_id": std_idnr.is_valid, "fr_nir": std_nir.is_valid,
    "es_dni": std_dni.is_valid, "es_nie": std_nie.is_valid, "it_fiscal_code": std_cf.is_valid,
    "nl_bsn": std_bsn.is_valid, "pl_pesel": std_pesel.is_valid, "br_cpf": std_cpf.is_valid,
    "in_aadhaar": std_aadhaar.is_valid, "ca_sin": std_sin.is_valid, "se_personnummer": std_pnr.is_valid,
    "fi_hetu": std_hetu.is_valid,
}


def label_ok(cell: Cell, kind: str, value: str, before: str, after: str) -> bool:
    """Re-checks a labelled value as read back from the finished cell."""
    if kind in NATIONAL_ORACLES:
        return NATIONAL_ORACLES[kind](value)
    if kind in SECRET_FORMATS:
        if not re.fullmatch(SECRET_FORMATS[kind], value):
            return False
        if kind == "github_token" and not value.startswith("github_pat_"):
            return base62_crc(value[4:34]) == value[34:]
        return True
    if kind == "email":
        return bool(EMAIL_LIKE.fullmatch(value))
    if kind == "card":
        return (bool(re.fullmatch(r"\d{12,19}|\d{4}([ -])\d{4}\1\d{4}\1\d{4}|\d{4}([ -])\d{6}\2\d{5}", value))
                and luhn_ok(digits_of(value)) and issued_iin(digits_of(value)))
    if kind == "iban":
        return std_iban.is_valid(value)
    if kind == "phone":
        return phone_ok(value, LOCALES[cell.locale][0]) if not value.startswith("+") else phone_ok(value, None)
    if kind == "ipv4":
        return isinstance(ipaddress.ip_address(value), ipaddress.IPv4Address)
    if kind == "ipv6":
        return isinstance(ipaddress.ip_address(value), ipaddress.IPv6Address)
    if kind == "jwt":
        return value.count(".") == 2 and jwt_header_is_json(value)
    if kind == "private_key":
        m = re.fullmatch(r"-----BEGIN ([A-Z ]+)-----\r?\n[A-Za-z0-9+/=\r\n]+\n-----END ([A-Z ]+)-----", value)
        return bool(m) and m.group(1) == m.group(2)
    if kind == "url_credentials":
        return before.endswith(":") and after.startswith("@") and "//" in before[-60:]
    if kind == "person":
        return any(w[0].isupper() for w in value.split()) and not any(ch.isdigit() for ch in value)
    if kind == "json_secret":
        return bool(re.search(r'"(?:' + "|".join(JSON_SECRET_KEYS) + r')"\s*:\s*"$', before)) and after.startswith('"')
    raise AssertionError(kind)


def verify(cell: Cell) -> None:
    """Labels point at exactly the bytes they claim and those bytes are a
    valid value of the kind; JSON cells parse."""
    raw = cell.text.encode()
    if cell.shape == "json":
        json.loads(cell.text)
    if cell.negative and cell.labels:
        raise AssertionError("a negative cell with labels")
    last_end = 0
    for lab in sorted(cell.labels, key=lambda lab: lab["start"]):
        if lab["start"] < last_end:
            raise AssertionError(f"overlapping labels in {cell.text!r}")
        last_end = lab["end"]
        piece = raw[lab["start"]:lab["end"]].decode()
        before = raw[:lab["start"]].decode()
        after = raw[lab["end"]:].decode()
        value = unescape_json_piece(piece) if cell.shape == "json" else piece
        if not piece or piece != piece.strip() or not label_ok(cell, lab["kind"], value, before, after):
            raise AssertionError(f"bad {lab['kind']} label {piece!r} in {cell.text!r}")


def lint(cell: Cell) -> str | None:
    """Something positive-looking outside the labels, or None."""
    raw = cell.text.encode()
    covered = bytearray(len(raw))
    for lab in cell.labels:
        covered[lab["start"]:lab["end"]] = b"\x01" * (lab["end"] - lab["start"])
    # Work on a copy with the labelled bytes blanked out.
    blank = bytes(b if not covered[i] else 0x20 for i, b in enumerate(raw)).decode(errors="replace")
    if cell.negative not in ("placeholder", "fake_jwt"):
        m = SECRET_LIKE.search(blank)
        if m:
            return "secret marker " + m.group()
    for m in EMAIL_LIKE.finditer(blank):
        if "@" in m.group():
            return "email " + m.group()
    for m in IPV4_LIKE.finditer(blank):
        if all(int(g) <= 255 for g in m.groups()):
            return "ipv4 " + m.group()
    for m in DIGIT_RUN.finditer(blank):
        if digit_kinds(m.group()):
            return "digits " + m.group()
    for m in IBAN_LIKE.finditer(blank):
        if std_iban.is_valid(m.group()):
            return "iban " + m.group()
    for m in SSN_LIKE.finditer(blank):
        if std_ssn.is_valid(m.group()):
            return "ssn " + m.group()
    return None


def main() -> int:
    if os.environ.get("PYTHONHASHSEED") != "0":
        # Some Faker data is built from sets (it_IT cities), whose order
        # follows the per-process string hash seed. Pin it and start over.
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--cells", type=int, default=14000)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    gen = Gen(args.seed)
    builder = Builder(gen)
    cells: list[Cell] = []
    redrawn = Counter()
    while len(cells) < args.cells:
        cell = builder.cell()
        verify(cell)
        problem = lint(cell)
        if problem:
            redrawn[problem.split()[0]] += 1
            continue
        cells.append(cell)

    per_kind = Counter()
    per_shape = Counter()
    negatives = Counter()
    with open(args.out, "w", encoding="utf-8", newline="\n") as out:
        for i, cell in enumerate(cells):
            obj = {"id": i, "shape": cell.shape, "locale": cell.locale, "text": cell.text, "labels": cell.labels}
            if cell.negative:
                obj["negative"] = cell.negative
                negatives[cell.negative] += 1
            for lab in cell.labels:
                per_kind[lab["kind"]] += 1
                per_shape[(lab["kind"], cell.shape)] += 1
            out.write(json.dumps(obj, ensure_ascii=False) + "\n")

    minimum = {k: 50 for k in ALL_KINDS}
    minimum["json_secret"] = 30
    short = [f"{k} ({per_kind[k]})" for k in ALL_KINDS if per_kind[k] < minimum[k]]
    print(f"{len(cells)} cells, {sum(per_kind.values())} labels, {sum(negatives.values())} hard negatives", file=sys.stderr)
    print(f"{'kind':18} {'total':>6} {'bare':>6} {'text':>6} {'json':>6}", file=sys.stderr)
    for k in ALL_KINDS:
        print(f"{k:18} {per_kind[k]:6} " + " ".join(f"{per_shape[(k, s)]:6}" for s in ("bare", "text", "json")), file=sys.stderr)
    print("negatives: " + ", ".join(f"{k} {v}" for k, v in sorted(negatives.items())), file=sys.stderr)
    print("redrawn cells (lint): " + (", ".join(f"{k} {v}" for k, v in sorted(redrawn.items())) or "none"), file=sys.stderr)
    print("redrawn values (ambiguous): " + ", ".join(f"{k} {v}" for k, v in sorted(gen.rejected.items())), file=sys.stderr)
    if short:
        print("too few labels: " + ", ".join(short), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
