"""Value vocabularies and checksums: what a column's values say when its name says nothing.

Special categories (GDPR Art. 9) are recognized from the words their values use (religions,
nationalities, sexual orientations, blood groups, ICD-10 codes); look-alikes from checksums
(Luhn for card numbers, the ABA routing checksum, which a phone number passes by chance only
one time in ten).
"""

from __future__ import annotations

import re
import unicodedata

import polars as pl


def _fold(words: str) -> frozenset[str]:
    return frozenset(_plain(w) for w in words.split("|"))


def _plain(text: str) -> str:
    """Lower case without accents or punctuation at the ends: `Römisch-Katholisch` →
    `romisch-katholisch`."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return text.strip(" .,;:'\"").lower()


#: category → entity, and the whole values that name it (several languages)
VOCABULARIES: dict[str, tuple[str, frozenset[str]]] = {
    "religion": ("NRP", _fold(
        "christian|catholic|roman catholic|protestant|evangelical|orthodox|anglican|lutheran|"
        "methodist|baptist|mormon|muslim|islam|sunni|shia|jewish|judaism|hindu|hinduism|"
        "buddhist|buddhism|sikh|sikhism|jain|bahai|atheist|agnostic|none|no religion|"
        "katholisch|romisch-katholisch|evangelisch|muslimisch|judisch|buddhistisch|"
        "konfessionslos|orthodox|catolico|catolica|protestante|musulman|musulmana|judio|judia|"
        "budista|ateo|atea|catholique|protestant|juif|juive|bouddhiste|athee|cattolico|"
        "ebreo|islamico")),
    "nationality": ("NRP", _fold(
        "american|british|english|scottish|welsh|irish|canadian|australian|german|french|"
        "spanish|italian|portuguese|dutch|belgian|swiss|austrian|polish|czech|slovak|"
        "hungarian|romanian|bulgarian|greek|turkish|russian|ukrainian|swedish|norwegian|"
        "danish|finnish|icelandic|mexican|brazilian|argentine|argentinian|chilean|colombian|"
        "peruvian|venezuelan|cuban|chinese|japanese|korean|indian|pakistani|bangladeshi|"
        "indonesian|filipino|vietnamese|thai|malaysian|nigerian|ghanaian|kenyan|ethiopian|"
        "egyptian|moroccan|algerian|tunisian|south african|iranian|iraqi|syrian|israeli|"
        "lebanese|saudi|emirati|deutsch|deutsche|franzosisch|espanol|espanola|francais|"
        "francaise|italiano|italiana|aleman|alemana|britanico|britanica")),
    "sexual_orientation": ("NRP", _fold(
        "heterosexual|straight|gay|lesbian|bisexual|pansexual|asexual|queer|homosexual|"
        "heterosexuell|homosexuell|bisexuell|heterosexual|homosexual|bisexual|lesbiana|"
        "heterosexuel|homosexuel|bisexuel|lesbienne|prefer not to say")),
    "ethnic_origin": ("NRP", _fold(
        "white|black|asian|hispanic|latino|latina|caucasian|african american|"
        "native american|pacific islander|mixed|multiracial|roma|gitano|gitana|caucasico|"
        "magrebi|latinoamericano|subsahariano|arab|arabe|berber|kurdish|han|sami|aboriginal|"
        "indigenous|mestizo")),
}
#: category → (entity, pattern every value of it matches)
PATTERNS: dict[str, tuple[str, str]] = {
    "health": ("MEDICAL", r"^(?:[A-TV-Z][0-9][0-9AB](?:\.[0-9A-TV-Z]{1,4})?|"
                          r"(?:A|B|AB|O|0)\s?(?:[+-]|pos|neg|positive|negative))$"),
}
#: category → (entity, pattern found in each value): a drug with its strength (`Metformin 500
#: MG`, `insulin 100 UNT/ML`) or a condition's medical term (`Acute viral pharyngitis`,
#: `Diabetes mellitus type 2`, `Melanoma`): words no product or place uses
MENTIONS: dict[str, tuple[str, str]] = {
    "health": ("MEDICAL", r"(?i)^(?:\p{L}.*\b\d+(?:[.,]\d+)?\s?(?:mg|mcg|µg|ml|unt|iu|meq)"
                          r"(?:/(?:ml|hr|actuat|g))?\b|.*\b(?:\p{L}{3,}(?:itis|osis|aemia|emia|"
                          r"pathy|plegia|algia|ectomy)|carcinoma|melanoma|lymphoma|sarcoma|"
                          r"glioma|myeloma|adenoma|diabetes|diabetic|hypertension|asthma|"
                          r"cancer|tumou?r|infection|fracture|disorder|syndrome|disease|"
                          r"depression|depressive|schizophrenia|bipolar|dementia|alzheimer|"
                          r"epilepsy|pneumonia|influenza|hiv|anemia|obesity|pregnancy|"
                          r"concussion|stroke|seizure|migraine|allergy|overdose)\b)"),
}
#: a share of values at least this high in a vocabulary makes the column that category
SHARE = 0.6


def special_category(values: pl.DataFrame) -> tuple[str, str, float] | None:
    """(entity, category, share) when most values (weighted by repeats) name one special
    category, else None. `values` has `value` (text) and `n` (repeats)."""
    total = values["n"].sum()
    if not total:
        return None
    plain = values.select(
        pl.col("value").map_elements(_plain, return_dtype=pl.String).alias("v"), pl.col("n"))
    best: tuple[str, str, float] | None = None
    for category, (entity, words) in VOCABULARIES.items():
        share = plain.filter(pl.col("v").is_in(list(words)))["n"].sum() / total
        if share >= SHARE and (best is None or share > best[2]):
            best = (entity, category, share)
    for category, (entity, pattern) in [*PATTERNS.items(), *MENTIONS.items()]:
        share = values.filter(pl.col("value").str.contains(pattern))["n"].sum() / total
        if share >= SHARE and (best is None or share > best[2]):
            best = (entity, category, share)
    if best and best[1] == "religion" and _only(plain, {"none", "no religion"}):
        return None  # a column of `none` says nothing
    return best


def _only(plain: pl.DataFrame, words: set[str]) -> bool:
    return plain["v"].is_in(list(words)).all()


_DIGITS = re.compile(r"\D")


def luhn_valid(text: str) -> bool:
    """A 13-19 digit number (separators ignored) whose Luhn checksum holds."""
    digits = _DIGITS.sub("", text)
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def aba_valid(text: str) -> bool:
    """A 9-digit ABA routing number whose weighted (3, 7, 1) checksum holds, with a valid
    Federal Reserve prefix."""
    if not re.fullmatch(r"\d{9}", text.strip()):
        return False
    digits = text.strip()
    prefix = int(digits[:2])
    if not (0 <= prefix <= 12 or 21 <= prefix <= 32 or 61 <= prefix <= 72 or prefix == 80):
        return False
    return sum(int(c) * w for c, w in zip(digits, (3, 7, 1) * 3, strict=True)) % 10 == 0


def share(values: pl.DataFrame, test) -> float:
    """The share of values (weighted by repeats) that pass `test`."""
    total = values["n"].sum()
    if not total:
        return 0.0
    hits = sum(n for v, n in zip(values["value"].to_list(), values["n"].to_list(),
                                 strict=True) if test(v))
    return hits / total


#: words of firms' names: legal forms in several countries and common trades
FIRM_WORDS = _fold(
    "inc|inc.|ltd|ltd.|llc|llp|plc|corp|corp.|corporation|co|co.|company|gmbh|ag|kg|ohg|"
    "sa|s.a.|sas|sarl|srl|spa|s.p.a.|bv|nv|ab|as|oy|hb|aps|kk|pty|limited|group|holding|"
    "holdings|partners|associates|services|solutions|systems|technologies|industries|"
    "international|enterprises|trading|bank|restaurant|restaurante|ristorante|cafe|bar|"
    "hotel|market|markets|supermarket|supermarkt|supermercado|hipermercados|grocery|grocers|"
    "delicatessen|delikatessen|shop|store|stores|importadora|handel|import|export|imports|"
    "foods|gourmet|bakery|brewery|pharmacy|clinic|consulting|agency|studio|studios|"
    "laboratories|labs|firma|empresa|societe|comercial|mercado|magazzini")
#: name particles written in lower case inside persons' names
PARTICLES = _fold("de|da|di|du|del|della|der|den|des|dos|das|van|von|la|le|y|e|bin|ibn|al|el|"
                  "ten|ter|zu|zum|af|av|st")


def firm_like(text: str) -> bool:
    """A value shaped like a firm's name: a legal form or trade word, an ampersand, or a
    lower-case word among capitalized ones (`Vins et alcools Chevalier`)."""
    words = [w for w in re.split(r"[\s,/]+", text) if w]
    if any(_plain(w) in FIRM_WORDS for w in words) or "&" in text:
        return True
    capital = any(w[:1].isupper() for w in words)
    lower = any(w[:1].islower() and len(w) >= 3 and _plain(w) not in PARTICLES for w in words)
    return capital and lower


#: the format identifiers biometric records begin with (ISO/IEC 19794 and ANSI 378: finger
#: minutiae `FMR`, finger image `FIR`, face `FAC`, iris `IIR`), as bytes, hex and base64
_TEMPLATE_MAGIC = re.compile(r"^(?:b'|0x)?(?:FMR|FIR|FAC|IIR)\\x00|^(?:0x)?(?:464d52|464952|"
                             r"464143|494952)00|^(?:Rk1SA|RklSA|RkFDA|SUlSA)", re.IGNORECASE)
_HEX_RUN = re.compile(r"(?:0x)?[0-9a-fA-F]+")
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_NUMBER_LIST = re.compile(r"^\[\s*-?\d+(?:\.\d+)?(?:[eE]-?\d+)?(?:\s*,\s*-?\d+(?:\.\d+)?"
                          r"(?:[eE]-?\d+)?){63,}\s*\]$")
#: a template or an embedding is hundreds of bytes; a hash is 16 to 64
TEMPLATE_BYTES = 128


def template_like(text: str) -> bool:
    """A biometric record as stored in a column: an ISO/ANSI record by its format identifier,
    an opaque blob of at least TEMPLATE_BYTES bytes (hex or base64), or an embedding (a list
    of at least 64 numbers). A SHA-256 `fingerprint` (32 bytes) is none of these."""
    if _TEMPLATE_MAGIC.match(text):
        return True
    if _HEX_RUN.fullmatch(text):
        return len(text.removeprefix("0x")) >= 2 * TEMPLATE_BYTES
    if _BASE64_RUN.fullmatch(text) and len(text) % 4 == 0:
        return len(text) * 3 // 4 >= TEMPLATE_BYTES
    return bool(_NUMBER_LIST.match(text))


_GENETIC = re.compile(r"^(?:rs\d+(?:\s*[:=]?\s*[ACGT]{1,2})?|[ACGT][/|]?[ACGT]|[ACGTN]{20,}|"
                      r"(?:[ACGT][/|]?[ACGT][,;\s]+){2,}[ACGT][/|]?[ACGT])$", re.IGNORECASE)


def genetic_like(text: str) -> bool:
    """Genetic data as stored: a genotype call (`AG`, `A/G`, `rs4680:AG`), a SNP id, or a
    nucleotide sequence."""
    return bool(_GENETIC.match(text.strip()))
