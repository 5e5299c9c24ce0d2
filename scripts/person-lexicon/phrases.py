#!/usr/bin/env python3
"""Builds the person detector's phrase gazetteer (`phrases.txt`): capitalised
phrases that look like a person's name and are not one (Aston Martin, Jasmine
Rice, Dr Pepper), and words that open a firm's name (Grupa, Stichting).

One entry a line, lower case, words separated by one space, dots dropped:
  `phrase<TAB>n`  a phrase of two to four words that is no one's name;
  `word<TAB>f`    a word that makes the capitalised words after it a firm.

Only phrases with a word the lexicon knows as a name or a title are kept: any other
phrase is never taken for a name anyway.

Sources (pinned in requirements.txt):
- faker-vehicle 0.2.0 (Apache-2.0): vehicle makes and models;
- faker-food 0.3.0 (MIT): ingredients, dishes, spices, vegetables, fruits;
- Faker 40.54.0 (MIT): company prefixes of the lexicon's locales;
- BRAND_PHRASES below: brands and places written like a titled or full
  name, hand-written.
"""

import argparse
import importlib
import re

LOCALES = ["pl_PL", "nl_NL", "es_ES", "de_DE", "fr_FR", "it_IT", "pt_BR", "pt_PT", "sv_SE", "fi_FI",
           "en_US", "en_GB", "cs_CZ", "da_DK", "no_NO"]

# Brands, products and places shaped like a person's name (a title and a
# surname, a given name and a common word) that no data package above lists.
# Brands that are a real person's full name (Calvin Klein, Johnnie Walker)
# are left out on purpose: a customer may bear that name, and masking a
# brand is the safer mistake.
BRAND_PHRASES = """
Dr Pepper|Dr Martens|Dr Oetker|Dr Scholl|Dr Bronner|Mr Clean|Mr Muscle|Mr Kipling|Mr Sheen
Mrs Dash|Mrs Fields|Miss Sixty|Captain Morgan|Uncle Ben|Aunt Jemima|Marks Spencer
Elizabeth Line|Victoria Line|Jubilee Line|Northern Line|Piccadilly Line|Bakerloo Line
Earl Grey|Victoria Sponge|Crystal Palace|Pearl Harbor|Ruby Rails|Iris Scanner
""".replace("\n", "|").split("|")


def clean(phrase: str) -> str:
    words = re.sub(r"[.,'’&]", " ", phrase).lower().split()
    return " ".join(words)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lexicon", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    names = set()
    with open(args.lexicon, encoding="utf-8") as f:
        for line in f:
            word, flags = line.rstrip("\n").split("\t")
            # A title makes any capitalised word after it a name.
            if set(flags) & {"g", "s", "t"}:
                names.add(word)

    phrases: set[str] = set()

    def add(phrase: str) -> None:
        p = clean(phrase)
        words = p.split()
        if 2 <= len(words) <= 4 and any(w in names for w in words):
            phrases.add(p)

    vehicles = importlib.import_module("faker_vehicle.vehicle_dict").vehicles
    for v in vehicles:
        add(v["Make"])
        add(f'{v["Make"]} {v["Model"]}')
    for mod, attr in (("ingredients", "ingredients"), ("dishes", "dishes"), ("spices", "spices"),
                      ("vegetables", "vegetables"), ("fruits", "fruits")):
        for entry in getattr(importlib.import_module(f"faker_food.{mod}"), attr):
            add(entry)
    for p in BRAND_PHRASES:
        if p.strip():
            add(p)

    openers: set[str] = set()
    for loc in LOCALES:
        try:
            company = importlib.import_module(f"faker.providers.company.{loc}").Provider
        except ModuleNotFoundError:
            continue
        for w in getattr(company, "company_prefixes", ()) or ():
            w = clean(w)
            if len(w.split()) == 1:
                openers.add(w)

    with open(args.out, "w", encoding="utf-8", newline="\n") as out:
        for p in sorted(phrases):
            out.write(f"{p}\tn\n")
        for w in sorted(openers):
            out.write(f"{w}\tf\n")
    print(f"{len(phrases)} phrases, {len(openers)} firm openers")


if __name__ == "__main__":
    main()
