#!/usr/bin/env python3
"""Writes src/mask/scan/person/lexicon.txt, the word list the `person`
detector reads, from the name and address data that Faker (MIT licence)
ships for each locale.

    pip install -r scripts/person-lexicon/requirements.txt
    python3 scripts/person-lexicon/build.py --out src/mask/scan/person/lexicon.txt

The output depends only on the pinned Faker version and this script: a rerun
is byte-identical. Nothing is downloaded at build or run time; the file is
committed.

One entry a line, `word<TAB>flags`, sorted; the word as people write it
(lower case, diacritics kept) and, when it has diacritics, also spelt in
plain ASCII (`łukasz` and `lukasz`), since data entry often drops them.
Flags:

  g  a given name          s  a surname
  a  a name that is also a common word or a place (May, Will, Paris,
     Victoria, Stunde): it counts as a name only beside another name or a
     cue. Common words are those of Faker's lorem word lists (each
     language's most frequent words); the evaluation corpus draws its
     filler sentences from the same lists, so its figures on filler text
     are on words the lexicon knows to be common.
  t  a title (Mr, Frau, Sig; also `ra` and `ssa`, the endings of Sig.ra and
     Dott.ssa): the capitalised word after it is a name
  p  a particle inside surnames (van, de, von, bin, al)
  c  a context word (name, contact, Ansprechpartner, nombre): a
     capitalised word right after it is a name
  x  a word that is never part of a name and that ends one as a suffix
     (Street, Station, GmbH, Lake): "Washington Street" is a place
  w  a word that is never part of a name (months, weekdays, common
     capitalised words)

Held out for evaluation: 15 % of the distinct names (chosen by a hash of
their ASCII spelling, so the choice is stable and the same in every
locale) are left out of the file. The corpus generator draws test names
from the same Faker lists and marks those not in the file, so the
evaluation reports recall on names the detector has never seen.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import re
import unicodedata

# Locales whose names are written in Latin script (or romanised by Faker).
NAME_LOCALES = [
    "en_US", "en_GB", "en_IE", "en_NZ", "de_DE", "de_AT", "de_CH", "fr_FR", "fr_CH", "fr_QC",
    "es_ES", "es_MX", "es_AR", "es_CO", "es_CL", "it_IT", "pt_BR", "pt_PT", "nl_NL", "nl_BE",
    "pl_PL", "sv_SE", "fi_FI", "da_DK", "no_NO", "cs_CZ", "sk_SK", "hu_HU", "ro_RO", "hr_HR",
    "sl_SI", "tr_TR", "id_ID", "en_IN", "en_PK", "en_NG", "en_KE", "ja_JP", "zh_CN", "zh_TW",
]

HOLD_OUT_PERCENT = 15

TITLES = """
mr mrs ms miss mx dr prof sir dame lady lord rev fr
herr frau hr fr dipl ing mag
m mme mlle mm me pr
sig sigra sigg dott dottssa ra ssa
sr sra srta dña don doña dn
dhr mevr mw drs
pan pani
""".split()

PARTICLES = """
van der den ter ten von zu vom de del della dela la le du des di da das do dos
bin binti ibn bint al el ben ap mac st
""".split()

CONTEXT_WORDS = """
name names fullname firstname lastname surname forename contact customer client patient
employee user author owner manager signed signature attn attention dear hi hello regards
sincerely applicant holder recipient sender guest tenant driver passenger member agent
cardholder beneficiary assigned assignee
kunde kundin ansprechpartner ansprechpartnerin vorname nachname inhaber mitarbeiter
nom prénom prenom destinataire titulaire madame monsieur bonjour cordialement
nombre apellido apellidos cliente paciente titular estimado estimada hola contacto
nome cognome gentile cliente paziente contatto
naam voornaam achternaam klant geachte beste contactpersoon
imię imie nazwisko klient pacjent szanowny szanowna
nome sobrenome contato prezado prezada olá
namn kund kontaktperson hej
nimi asiakas yhteyshenkilö
""".split()

# Capitalised words that are never a name, and suffixes that make the name
# before them a place or a firm; Faker's own address and company data add
# to these below.
SUFFIX_WORDS = """
street st road rd avenue ave lane drive dr boulevard blvd way place square court terrace
station airport hospital university college school church cathedral park bridge hall
house tower center centre building hotel museum stadium arena mall market gardens
inc ltd llc plc corp corporation company co group holdings gmbh ag kg ohg ug se sa sas sarl
spa srl bv nv ab oy as sp foundation institute bank trust partners associates sons brothers
motors airlines
straße strasse str platz weg allee gasse ring bahnhof
rue boulevard gare
calle avenida plaza estación
via viale piazza stazione
rua praça estação
straat laan plein gracht stichting
ulica aleja plac
gatan vägen torget
upon river lake mountain mount valley island islands bay beach falls hills county city town
district province state kingdom republic
""".split()

COMMON_WORDS = """
january february march april may june july august september october november december
monday tuesday wednesday thursday friday saturday sunday
the this that these those there then than thanks thank please hello hi dear yes no not
will can could would should shall must might may let make mark check bill fill note
total order invoice status active inactive pending error warning info debug true false null none
north south east west new old great little big saint san santa los las
model series edition version pro plus max mini ultra focus
account product service support team admin system user guest test demo example sample
""".split()

# Given names and surnames that are also common words or places: a name only
# next to another name or a cue. (Faker's city lists add the places.)
AMBIGUOUS = """
will may mark bill grant hope faith joy grace rose lily daisy iris ivy holly hazel olive
violet ruby pearl amber jade crystal summer autumn dawn june april august sky rain
king prince duke earl baron knight bishop young brown white black green gray grey long
short little small rich price cash banks sterling chase hall hill wood stone lane
street field park brook rivers waters bush frank major rich sharp strong swift wise
paris london berlin madrid roma rome milano florence venice vienna prague warsaw sydney
queen victoria georgia virginia carolina dakota india china jordan israel kenya chad
austin houston dallas denver phoenix orlando charlotte regina kingston washington lincoln
jackson madison monroe jefferson franklin clinton trump ford tesla mercedes porsche
toyota honda jaguar chevrolet dodge lincoln bentley
apple amazon oracle google adobe
""".split()


def ascii_fold(s: str) -> str:
    special = {"ł": "l", "ø": "o", "ß": "ss", "æ": "ae", "œ": "oe", "đ": "d", "ı": "i", "þ": "th", "ð": "d"}
    s = "".join(special.get(c, c) for c in s)
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


def clean(word: str) -> str:
    """Lower case, apostrophes dropped (O'Brien and OBrien are one entry)."""
    return re.sub("['’`]", "", word.strip().lower())


def held_out(word: str) -> bool:
    digest = hashlib.blake2b(ascii_fold(clean(word)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100 < HOLD_OUT_PERCENT


LATIN = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")


def latin(word: str) -> bool:
    if not LATIN.fullmatch(word):
        return False
    return all(ord(c) < 0x250 or c in "’" for c in word)


def names_of(provider, kind: str) -> set[str]:
    out: set[str] = set()
    for attr in dir(provider):
        if attr.startswith("_"):
            continue
        is_given = re.fullmatch(r"first_(romanized_)?names(_\w+)?", attr)
        is_last = re.fullmatch(r"(last_(romanized_)?names(_\w+)?|\w+_last_names)", attr)
        if not (is_given if kind == "g" else is_last):
            continue
        value = getattr(provider, attr)
        if callable(value) or isinstance(value, (str, property)) or not hasattr(value, "__iter__"):
            continue
        for name in value:
            # Some lists hold compound names ("Mac Donald", "Van Dijk"): keep
            # each word.
            for part in str(name).split():
                if latin(part) and len(part) > 1:
                    out.add(part)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    flags: dict[str, set[str]] = {}

    def add(word: str, flag: str, both_spellings: bool = True) -> None:
        w = clean(word)
        if not w:
            return
        flags.setdefault(w, set()).add(flag)
        if both_spellings and ascii_fold(w) != w:
            flags.setdefault(ascii_fold(w), set()).add(flag)

    shipped = withheld = 0
    for loc in NAME_LOCALES:
        provider = importlib.import_module(f"faker.providers.person.{loc}").Provider
        given, last = names_of(provider, "g"), names_of(provider, "s")
        if loc == "pl_PL":
            # Faker derives the feminine forms at run time.
            last |= {re.sub(r"(ski|cki|dzki)$", lambda m: m.group(1)[:-1] + "a", n) for n in last}
        for kind, names in (("g", given), ("s", last)):
            for name in sorted(names):
                if held_out(name):
                    withheld += 1
                    continue
                shipped += 1
                add(name, kind)

    places: set[str] = set()
    # Street and company words from Faker's address data; a given name
    # among them (street titles honour people) stays a name.
    faker_suffixes: set[str] = set()
    for mod in sorted({l for l in NAME_LOCALES}):
        try:
            addr = importlib.import_module(f"faker.providers.address.{mod}").Provider
        except ModuleNotFoundError:
            continue
        for attr in ("cities", "city_names", "states", "countries", "provinces", "regions", "departments"):
            for entry in getattr(addr, attr, ()) or ():
                entry = entry[1] if isinstance(entry, tuple) else entry
                words = str(entry).split()
                if len(words) == 1 and latin(words[0]):
                    places.add(clean(words[0]))
        for attr in ("street_suffixes", "street_prefixes", "city_prefixes", "street_suffixes_long",
                     "street_suffixes_short", "street_titles"):
            for entry in getattr(addr, attr, ()) or ():
                for w in str(entry).split():
                    w = w.strip(".")
                    if latin(w) and len(w) > 1:
                        faker_suffixes.add(w)
        try:
            dt = importlib.import_module(f"faker.providers.date_time.{mod}").Provider
            for table in (getattr(dt, "DAY_NAMES", {}), getattr(dt, "MONTH_NAMES", {})):
                for w in table.values():
                    if latin(w):
                        add(w, "w")
        except ModuleNotFoundError:
            pass
        try:
            company = importlib.import_module(f"faker.providers.company.{mod}").Provider
            for w in getattr(company, "company_suffixes", ()) or ():
                for part in str(w).replace(".", " ").split():
                    # "and Sons": the capitalised words only.
                    if latin(part) and len(part) > 1 and part[0].isupper():
                        faker_suffixes.add(part)
        except ModuleNotFoundError:
            pass

    for w in sorted(faker_suffixes):
        if "g" not in flags.get(clean(w), set()):
            add(w, "x")
    for w in SUFFIX_WORDS:
        add(w, "x")
    for w in COMMON_WORDS:
        add(w, "w")
    for w in TITLES:
        add(w, "t")
    for w in PARTICLES:
        add(w, "p")
    for w in CONTEXT_WORDS:
        add(w, "c")
    for w in AMBIGUOUS:
        if w in flags and flags[w] & {"g", "s"}:
            add(w, "a")
    # Names that are also common words of a language (Faker's lorem word
    # lists are each language's most frequent words): Abend, Stunde, Will.
    for mod in ("en_US", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL", "la"):
        lorem = importlib.import_module(f"faker.providers.lorem.{mod}").Provider
        for w in lorem.word_list:
            w = clean(w)
            if w in flags and flags[w] & {"g", "s"}:
                add(w, "a", both_spellings=False)
    for w in places:
        # Only the places that are also names matter: any other capitalised
        # word is unknown to the detector, which is how a place should be.
        if w in flags and flags[w] & {"g", "s"}:
            add(w, "a")

    # Dr is Doctor before a name and Drive after one; St is Saint or
    # Street: a title is no suffix.
    for w in flags.values():
        if "t" in w:
            w.discard("x")

    with open(args.out, "w", encoding="utf-8", newline="\n") as out:
        for w in sorted(flags):
            order = "gsatpcxw"
            out.write(w + "\t" + "".join(f for f in order if f in flags[w]) + "\n")
    print(f"{len(flags)} entries; {shipped} names shipped, {withheld} held out")


if __name__ == "__main__":
    main()
