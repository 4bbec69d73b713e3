"""``--fail-on`` rules: a small, safe expression language over result records.

    label in {noise, silence}
    confidence < 0.6 or agreement <= 2
    clipping > 0.001 and not (status != ok)
    probabilities.speech >= 0.5
    fraction.music > 0.1 or segment_count > 20      (with --segments)

Grammar (parsed here, never ``eval``'d)::

    expr    := and ("or" and)*
    and     := unary ("and" unary)*
    unary   := "not" unary | "(" expr ")" | test
    test    := FIELD OP VALUE | FIELD ["not"] "in" "{" VALUE ("," VALUE)* "}"
    OP      := "<" | "<=" | ">" | ">=" | "==" | "!="
    VALUE   := a number, a bare word, or a quoted string

Fields are the record's own (``status``, ``label``, ``confidence``,
``agreement``, ``members``, ``model``, ``path``, ``seconds``), its signal
facts by name (``duration``, ``sample_rate``, ``clipping``, …), and
``probabilities.<class>``, ``votes.<member>``, ``error.kind``,
``error.message``; with ``--segments`` also ``fraction.<class>`` (the share
of the file's time in that class's segments) and ``segment_count``. A class
or member name that is not one word is quoted: ``probabilities."bip bop"``.
A test
on a field the record does not have (the confidence of a file that could not
be analyzed) is false. ``Rule.fields`` names the fields a rule uses and
``Rule.values`` the words it compares them with, so the caller can refuse
segment fields without ``--segments`` and classes or members the model does
not have; statuses, error kinds, formats and subtypes (in either case:
libsndfile's names are upper case) are checked here, and ``<`` on a word
or a word against a number.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from analyzer.errors import UsageError
from analyzer.results import ERROR_KINDS, STATUSES, SignalFacts

TOP_FIELDS = frozenset(
    {
        "status",
        "label",
        "confidence",
        "agreement",
        "members",
        "model",
        "path",
        "seconds",
        "content_hash",
        "segment_count",
    }
)
#: Fields that exist only with ``--segments``: ``segment_count`` and ``fraction.*``.
SEGMENT_FIELDS = frozenset({"segment_count"})
SIGNAL_FIELDS = frozenset(SignalFacts.__dataclass_fields__)
PREFIXED = frozenset({"probabilities", "votes", "error", "fraction"})
#: Those followed by a class name. Classes are named in Unicode's NFC form
#: (``analyzer.dataset``), as a rule's words are taken: "é" typed as e and
#: a combining accent is the same class.
CLASS_PREFIXED = frozenset({"probabilities", "fraction"})
#: Fields whose values are words: ``<`` and friends would never be true.
TEXT_FIELDS = frozenset({"status", "label", "model", "path", "content_hash", "format", "subtype"})
TEXT_PREFIXES = ("votes.", "error.")
#: soundfile's names for libsndfile's formats and subtypes (written out: importing
#: soundfile imports numpy, which a cached rerun does without).
FORMATS = (
    *("AIFF", "AU", "AVR", "CAF", "FLAC", "HTK", "IRCAM", "MAT4", "MAT5", "MP3", "MPC2K"),
    *("NIST", "OGG", "PAF", "PVF", "RAW", "RF64", "SD2", "SDS", "SVX", "VOC", "W64"),
    *("WAV", "WAVEX", "WVE", "XI"),
)
SUBTYPES = (
    *("ALAC_16", "ALAC_20", "ALAC_24", "ALAC_32", "ALAW", "DOUBLE", "DPCM_16", "DPCM_8"),
    *("DWVW_12", "DWVW_16", "DWVW_24", "DWVW_N", "FLOAT", "G721_32", "G723_24", "G723_40"),
    *("GSM610", "IMA_ADPCM", "MPEG_LAYER_I", "MPEG_LAYER_II", "MPEG_LAYER_III", "MS_ADPCM"),
    *("NMS_ADPCM_16", "NMS_ADPCM_24", "NMS_ADPCM_32", "OPUS", "PCM_16", "PCM_24", "PCM_32"),
    *("PCM_S8", "PCM_U8", "ULAW", "VORBIS", "VOX_ADPCM"),
)
#: The words these fields can hold; a rule naming another one is a typo.
KNOWN_VALUES = {
    "status": STATUSES,
    "error.kind": ERROR_KINDS,
    "format": FORMATS,
    "subtype": SUBTYPES,
}
#: Fields holding libsndfile's names, which are upper case: ``wav`` means ``WAV``.
LIBSNDFILE_NAMES = ("format", "subtype")
#: Prefixes whose record key differs from the name in rules.
RECORD_KEYS = {"fraction": "fractions"}
NUMERIC_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
EQUALITY_OPS = ("==", "!=")
#: Deepest nesting of ``not`` and parentheses a rule may use.
MAX_DEPTH = 50

_TOKEN = re.compile(
    r"""\s*(?:(?P<op><=|>=|==|!=|<|>)|(?P<punct>[(){},])|(?P<str>"[^"]*"|'[^']*')"""
    # A class or member whose name is not one word, quoted after its prefix:
    # probabilities."bip bop". (\w: class names in any script, as train takes them.)
    r"""|(?P<quoted>[a-z_]+\.(?:"[^"]*"|'[^']*'))|(?P<word>[\w.+\-]+))"""
)

_WORD = re.compile(r"[\w.+\-]*")

Predicate = Callable[[dict[str, Any]], bool]


def _did_you_mean(name: str) -> str:
    """`` (did you mean 'label'?)`` for a misspelt field, or nothing."""
    rest = re.split(r"[._]", name, maxsplit=1)[1:]  # fraction_speech: fraction.speech?
    near = [*TOP_FIELDS, *SIGNAL_FIELDS, "error.kind", "error.message"]
    near += [f"{prefix}.{rest[0]}" for prefix in PREFIXED if rest and rest[0]]
    found = difflib.get_close_matches(name, near, n=1, cutoff=0.75)
    return f" (did you mean {found[0]!r}?)" if found else ""


class RuleError(UsageError):
    """A rule that cannot be parsed; the message points at the mistake."""


@dataclass(frozen=True)
class Rule:
    """A parsed ``--fail-on`` expression: ``rule.fails(record)``."""

    text: str
    fails: Predicate
    fields: tuple[str, ...] = ()
    #: ``(field, value)`` of every ``==``, ``!=`` and ``in`` test, for the
    #: caller to check against the model (``label == musik`` would never fire).
    values: tuple[tuple[str, str], ...] = ()

    def segment_fields(self) -> list[str]:
        """The fields it uses that only ``--segments`` gives."""
        return [f for f in self.fields if f in SEGMENT_FIELDS or f.startswith("fraction.")]


def lookup(record: dict[str, Any], field: str) -> Any:
    """The value of ``field`` in a result record, or ``None``. Class names
    are compared in NFC form, as rules take them (a model trained before
    labels were may name ``café`` with a combining accent)."""
    if field in TOP_FIELDS:
        return nfc(record.get(field)) if field == "label" else record.get(field)
    if field in SIGNAL_FIELDS:
        return (record.get("signal") or {}).get(field)
    prefix, _, name = field.partition(".")
    table = record.get(RECORD_KEYS.get(prefix, prefix)) or {}
    if prefix == "votes":
        return nfc(table.get(name))
    if prefix in CLASS_PREFIXED and name not in table:
        table = {nfc(key): value for key, value in table.items()}
    return table.get(name)


def nfc(value: Any) -> Any:
    """A text in Unicode's NFC form; anything else as it is."""
    return unicodedata.normalize("NFC", value) if isinstance(value, str) else value


def _number(text: str) -> float | None:
    """A finite number, or None (``nan`` and ``inf`` make rules that never fire)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _is_text(field: str) -> bool:
    return field in TEXT_FIELDS or field.startswith(TEXT_PREFIXES)


def _same(got: Any, value: str) -> bool:
    """``got == value``, numerically when both are numbers (``2 == 2.0``)."""
    number = _number(value)
    if isinstance(got, (int, float)) and not isinstance(got, bool) and number is not None:
        return float(got) == number
    return str(got) == value


def _hint(character: str) -> str:
    """What a rule with ``character`` where it cannot be probably meant."""
    if character == "=":
        return " (equality is ==)"
    if character in "/:*?[]~\\":
        return " (quote a value that holds it: path == 'a/b.wav')"
    return ""


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []  # (kind, value, position)
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            match = _TOKEN.match(text, pos)
            if not match or match.end() == pos:
                at = pos + len(text[pos:]) - len(text[pos:].lstrip())
                self.fail(at, f"unexpected character {text[at]!r}{_hint(text[at])}")
            kind = match.lastgroup or ""
            value, pos = match.group(kind), match.end()
            if kind == "word":  # \w leaves out combining marks: café as e + ´, Hindi's vowels
                while pos < len(text) and unicodedata.category(text[pos]).startswith("M"):
                    more = _WORD.match(text, pos + 1)
                    pos = more.end() if more else pos + 1
                value = text[match.start(kind) : pos]
            self.tokens.append((kind, value, match.start(kind)))
        self.i = 0
        self.depth = 0
        self.fields: list[str] = []
        self.values: list[tuple[str, str]] = []

    def fail(self, pos: int, message: str) -> NoReturn:
        raise RuleError(f"bad rule: {message}\n  {self.text}\n  {' ' * pos}^")

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i] if self.i < len(self.tokens) else ("end", "", len(self.text))

    def take(self) -> tuple[str, str, int]:
        token = self.peek()
        self.i += 1
        return token

    def expect(self, value: str) -> None:
        _, got, pos = self.take()
        if got != value:
            self.fail(pos, f"expected {value!r}, found {got or 'the end'!r}")

    def parse(self) -> Predicate:
        predicate = self.expr()
        kind, value, pos = self.peek()
        if kind != "end":
            self.fail(pos, f"unexpected {value!r}")
        return predicate

    def expr(self) -> Predicate:
        parts = [self.conj()]
        while self.peek()[1] == "or":
            self.take()
            parts.append(self.conj())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def conj(self) -> Predicate:
        parts = [self.unary()]
        while self.peek()[1] == "and":
            self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def unary(self) -> Predicate:
        value, pos = self.peek()[1:]
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(pos, f"nested more than {MAX_DEPTH} deep")
        if value == "not":
            self.take()
            negated = self.unary()
            self.depth -= 1
            return lambda r: not negated(r)
        if value == "(":
            self.take()
            inner = self.expr()
            self.expect(")")
            self.depth -= 1
            return inner
        self.depth -= 1
        return self.test()

    def field(self) -> str:
        kind, name, pos = self.take()
        if kind == "quoted":  # probabilities."bip bop"
            head, _, quoted = name.partition(".")
            kind, name = "word", f"{head}.{quoted[1:-1]}"
        prefix = name.partition(".")[0]
        if prefix in CLASS_PREFIXED:
            name = nfc(name)  # as classes are named
        known = (
            name in TOP_FIELDS
            or name in SIGNAL_FIELDS
            or (prefix in PREFIXED and "." in name and name.partition(".")[2])
        )
        if kind != "word":
            self.fail(pos, f"expected a field, found {name or 'the end'!r}")
        if not known:
            fields = ", ".join(sorted(TOP_FIELDS | SIGNAL_FIELDS))
            self.fail(
                pos,
                f"unknown field {name!r}{_did_you_mean(name)}; fields are {fields},"
                " probabilities.<class>, votes.<member>, error.kind, error.message,"
                " fraction.<class> (quote a name that is not one word:"
                ' probabilities."bip bop")',
            )
        self.fields.append(name)
        return name

    def value(self, field: str | None = None) -> str:
        """A value; compared with ``field``, it is recorded and, where the
        field's words are known, checked."""
        kind, value, pos = self.take()
        if kind == "str":
            value = value[1:-1]
        elif kind != "word":
            self.fail(pos, f"expected a value, found {value or 'the end'!r}")
        if field is not None:
            typed = value
            if field in LIBSNDFILE_NAMES:
                value = value.upper()
            if field == "label" or field.startswith("votes."):
                value = nfc(value)  # as classes are named
            known = KNOWN_VALUES.get(field)
            if known is not None and value not in known:
                self.fail(pos, f"unknown {field} {typed!r}; it is one of {', '.join(known)}")
            if not _is_text(field) and _number(value) is None:
                self.fail(pos, f"{field} holds a number; {value!r} is not one")
            self.values.append((field, value))
        return value

    def test(self) -> Predicate:
        field = self.field()
        _, op, pos = self.take()
        if op in ("in", "not"):
            negate = op == "not"
            if negate:
                self.expect("in")
            self.expect("{")
            values = {self.value(field)}
            while self.peek()[1] == ",":
                self.take()
                values.add(self.value(field))
            self.expect("}")

            def member(r: dict[str, Any]) -> bool:
                got = lookup(r, field)
                return got is not None and any(_same(got, v) for v in values) != negate

            return member
        if op in NUMERIC_OPS:
            if _is_text(field):
                self.fail(pos, f"{op} compares numbers, and {field} is a word")
            vpos = self.peek()[2]
            parsed = _number(self.value())
            if parsed is None:
                self.fail(vpos, f"{op} needs a number")
            threshold = parsed
            compare = NUMERIC_OPS[op]

            def numeric(r: dict[str, Any]) -> bool:
                got = lookup(r, field)
                return isinstance(got, (int, float)) and compare(got, threshold)

            return numeric
        if op in EQUALITY_OPS:
            raw = self.value(field)
            equal = op == "=="

            def equality(r: dict[str, Any]) -> bool:
                got = lookup(r, field)
                return got is not None and _same(got, raw) == equal

            return equality
        quote = ""
        if field.partition(".")[0] in PREFIXED and op and op[0].isalnum():
            head, _, name = field.partition(".")
            quote = f' (quote a name that is not one word: {head}."{name} {op}")'
        self.fail(
            pos,
            f"expected an operator (< <= > >= == != in, not in), found {op or 'the end'!r}{quote}",
        )
        raise AssertionError  # unreachable: fail raises


def parse_rule(text: str) -> Rule:
    """Parse one ``--fail-on`` expression; ``RuleError`` points at a mistake."""
    if not text.strip():
        raise RuleError("bad rule: it is empty")
    text = text.strip()  # as it is named in reports ('  label == x  ' from a variable)
    parser = _Parser(text)
    fails = parser.parse()
    return Rule(text=text, fails=fails, fields=tuple(parser.fields), values=tuple(parser.values))


def violations(rules: list[Rule], record: dict[str, Any]) -> list[str]:
    """The texts of the rules ``record`` fails."""
    return [rule.text for rule in rules if rule.fails(record)]
