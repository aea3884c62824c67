"""Answers keyed by a provider's field ids -> a Cliniko write body, per the source's rules.

The result is a plain dict (not yet a ContactDraft) so that validation can report every field
Cliniko would reject, by Cliniko's field name. Rules run in order; when several rules fill the
same field, the first one with an answer wins (so a later rule can serve as a fallback).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cliniko_automations.cliniko import rules
from cliniko_automations.common.person_keys import clean_email, composed
from cliniko_automations.intake.config import PLACEHOLDER, FieldRule, FormSource
from cliniko_automations.intake_api.providers.base import Answer, as_text

TYPE_CODES_BY_NAME = {name.casefold(): code for code, name in rules.TYPE_NAMES.items()}
# Every Cliniko field but `notes` is one line: a textarea's address or a pasted name keeps its
# words, its line breaks and tabs become spaces (the worker's lookup filters by name, and no
# Cliniko filter can carry a control character).
MULTI_LINE_FIELDS = frozenset({"notes"})
# From where a run of blanks starts only (the lookbehind), so a long run of spaces is read
# once, not from each of its spaces (60,000 of them took 30 s).
LINE_BREAKS = re.compile(
    r"(?<![ \t])[ \t]*[\t\n\v\f\r\x1c-\x1e\x85\u2028\u2029]"
    r"[ \t\n\v\f\r\x1c-\x1e\x85\u2028\u2029]*"
)
# Invisible characters a copy-paste carries into a one-line answer and that no spelling
# needs: the soft hyphen, the zero-width space, the word joiner and invisible operators, the
# byte-order mark, and the direction marks, embeddings, overrides and isolates. Kept, a name
# pasted with one is another string to Cliniko's filters (a second contact beside the one
# staff typed, for a submission without an email; `name_differs` under `overwrite`), an
# override shows the name reversed, and a name of them alone was taken while staff saw a
# blank. The joiners (ZWNJ, ZWJ) stay: Persian, Hindi and other scripts spell names with them.
# So do the format characters that show (Arabic and Kaithi number signs, the Syriac
# abbreviation mark) and those that spell hieroglyphs. The rest of Unicode's invisible format
# characters go too, and the Hangul fillers, letters that show nothing: kept, "Ana" with one
# was another person, and a name of them alone one staff saw blank. A tag sequence's flag (of
# Scotland) is then a black flag, in a name or a company.
# A table for str.translate, quicker than asking unicodedata each character's category.
INVISIBLE_IN_ONE_LINE = dict.fromkeys(
    [
        *(0x00AD, 0x034F, 0x061C, 0x180E, 0x200B, 0x200E, 0x200F, 0xFEFF),
        *range(0x202A, 0x202F),  # embeddings and overrides
        *range(0x2060, 0x2065),  # word joiner, invisible operators
        *range(0x2066, 0x206A),  # isolates
        *range(0x206A, 0x2070),  # deprecated shaping and digit-shape controls
        *(0x115F, 0x1160, 0x3164, 0xFFA0),  # Hangul fillers
        *range(0xFFF9, 0xFFFC),  # interlinear annotation
        *range(0x1BCA0, 0x1BCA4),  # shorthand format controls
        *range(0x1D173, 0x1D17B),  # musical beam, tie, slur and phrase controls
        0xE0001,  # language tag
        *range(0xE0020, 0xE0080),  # tags
    ]
)
# The Cliniko fields that a derived target fills.
DERIVED_TARGETS = {
    "full_name": ("first_name", "last_name", "title"),
    "phone": ("phone_numbers",),
}
# The fields a person has one of, and those of them a full name fills. An answer given several
# times with different values (two inputs named `email`, a checkbox group mapped to a name) is
# refused for them: joined, "Ann, Bob" went to Cliniko as the first name, and "a@x.org,
# b@y.org" was refused as an invalid email, which did not say why.
ONE_VALUE_TARGETS = {
    "first_name": ("first_name",),
    "last_name": ("last_name",),
    "preferred_name": ("preferred_name",),
    "title": ("title",),
    "email": ("email",),
    "full_name": ("first_name", "last_name"),
}


def map_answers(answers: Mapping[str, Answer], source: FormSource) -> dict[str, Any]:
    return _mapped(answers, source, source.defaults)


def given_differently(answers: Mapping[str, Answer], source: FormSource) -> tuple[str, ...]:
    """The fields of `map_answers`' body that a person has one of (ONE_VALUE_TARGETS) and
    that it fills from an answer given several times with different values."""
    differing: set[str] = set()
    _mapped(answers, source, {}, differing)
    return tuple(sorted(differing))


def _mapped(
    answers: Mapping[str, Answer],
    source: FormSource,
    defaults: Mapping[str, Any],
    differing: set[str] | None = None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    phones: list[dict[str, str]] = []
    for rule in source.fields:
        answer = _answer_for(rule, answers)
        if rule.to not in MULTI_LINE_FIELDS:  # the notes keep what was typed
            answer = _without_invisible(answer)
        if rule.to == "email" and isinstance(answer, list):
            # One mailbox typed twice in another case (a phone capitalising the first
            # letter of one input), as Cliniko and the worker's lookup compare emails.
            answer = _first_per_mailbox(answer)
        # An email of invisible characters alone is no answer, like one of spaces.
        text = clean_email(as_text(answer)) if rule.to == "email" else as_text(answer)
        if not text:
            continue
        filled = ONE_VALUE_TARGETS.get(rule.to, ())
        # Only the rule whose answer fills them (the first answered) can be the one to blame.
        if differing is not None and filled and not any(name in fields for name in filled):
            differing.update(filled if _differs(answer) else ())
        if rule.to == "full_name":
            for name, value in split_name(answer, _parts_mapped(rule.from_, source)).items():
                fields.setdefault(name, value)
        elif rule.to == "phone":
            for number in _phone_numbers(answer, text):
                phones.append({"number": number, "phone_type": rule.phone_type or "Mobile"})
        else:
            fields.setdefault(rule.to, _convert(rule, text))
    if phones:
        fields["phone_numbers"] = phones
    if source.notes_template is not None:
        notes = render_notes(source.notes_template, answers, source)
        if notes:
            fields["notes"] = notes
    for name, value in defaults.items():
        fields.setdefault(name, value)
    for name, value in fields.items():
        if isinstance(value, str) and name not in MULTI_LINE_FIELDS:
            # Composed: a name typed as "e" and an accent was listed by Cliniko's name filter
            # apart from the "é" staff typed (a second contact for a submission without an
            # email), and shown so in Cliniko's search.
            fields[name] = composed(one_line(value))
    for phone in phones:
        phone["number"] = one_line(phone["number"])
    return fields


def unanswered_fields(
    fields: Mapping[str, Any], answers: Mapping[str, Answer], source: FormSource
) -> tuple[str, ...]:
    """The fields of `map_answers`' body that no answer gave: a default, and the notes when
    the template's every answer was blank (its own text alone). They are for the contacts the
    form creates: an update, under any policy, only fills blanks with them."""
    answered = _mapped(answers, source, {})
    names = set(fields) - set(answered)
    template = source.notes_template
    if template is not None and fields.get("notes") == render_notes(template, {}, source):
        names.add("notes")
    return tuple(sorted(names))


def one_line(text: str) -> str:
    return LINE_BREAKS.sub(" ", text)


def answer_ids_for(field: str, source: FormSource) -> list[str]:
    """The provider field ids that feed a Cliniko field (to point a browser at its inputs)."""
    ids = []
    for rule in source.fields:
        produces = DERIVED_TARGETS.get(rule.to, (rule.to,))
        if field in produces and rule.from_ not in ids:
            ids.append(rule.from_)
    if field == "notes" and source.notes_template is not None:
        # The template's answers (a textarea holding a NUL): "notes" is no input of the form.
        for match in PLACEHOLDER.finditer(source.notes_template):
            name = match.group(1)
            if name and name not in NOTES_BUILTINS and name not in ids:
                ids.append(name)
    return ids


# Titles typed in front of a name in one box ("Dr Jane Smith", as a GP signs a referral): the
# contact's title, as a compound answer's prefix is, not its first name. Only before two more
# words: "Dr Smith" may be a surname alone, or a first name.
TYPED_TITLES = frozenset({"dr", "prof", "professor", "a/prof", "mr", "mrs", "ms", "miss", "mx"})


def split_name(answer: Answer, mapped_elsewhere: frozenset[str] = frozenset()) -> dict[str, str]:
    """A full name as first_name (first word) and last_name (the rest), a typed title before
    them as the title; compound answers
    such as Jotform's {"prefix", "first", "middle", "last", "suffix"} keep their own parts,
    the middle name after the first ("Mary Jane"), the suffix after the last ("Watson Jr"):
    Cliniko has no field for either. A middle name or suffix in `mapped_elsewhere` (a rule of
    the source maps that part to a field of its own) is left to that rule."""
    if isinstance(answer, dict) and (answer.get("first") or answer.get("last")):

        def with_added(name: str, added: str) -> str:
            texts = [as_text(answer.get(name))]
            if added not in mapped_elsewhere:
                texts.append(as_text(answer.get(added)))
            return " ".join(text for text in texts if text)

        parts = {
            "title": as_text(answer.get("prefix")),
            "first_name": with_added("first", "middle"),
            "last_name": with_added("last", "suffix"),
        }
        return {name: value for name, value in parts.items() if value}
    words = as_text(answer).split()
    title: dict[str, str] = {}
    if len(words) > 2 and words[0].casefold().rstrip(".") in TYPED_TITLES:
        title, words = {"title": words[0]}, words[1:]
    if not words:
        return {}
    if len(words) == 1:
        return {**title, "first_name": words[0]}
    return {**title, "first_name": words[0], "last_name": " ".join(words[1:])}


# The placeholders of a notes template that name no answer.
NOTES_BUILTINS = frozenset({"_source", "_provider"})


def render_notes(template: str, answers: Mapping[str, Answer], source: FormSource) -> str:
    builtins = {"_source": source.name, "_provider": source.provider}

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = match.group(1)
        if name in builtins:
            return builtins[name]
        return as_text(answers.get(name))

    return PLACEHOLDER.sub(replace, template).strip()


def _parts_mapped(answer_id: str, source: FormSource) -> frozenset[str]:
    """The parts of a compound answer that the source's rules map on their own."""
    return frozenset(
        rule.part for rule in source.fields if rule.from_ == answer_id and rule.part is not None
    )


def _answer_for(rule: FieldRule, answers: Mapping[str, Answer]) -> Answer:
    answer = answers.get(rule.from_)
    if rule.part is None:
        return answer
    return answer.get(rule.part) if isinstance(answer, dict) else None


def _differs(answer: Answer) -> bool:
    """Whether an answer is several values that are not all alike."""
    return isinstance(answer, list) and len({as_text(item) for item in answer} - {""}) > 1


def _first_per_mailbox(emails: list[str]) -> list[str]:
    """`emails` in order, each but the first of those alike but for case left out."""
    first: dict[str, str] = {}
    for email in emails:
        first.setdefault(email.casefold(), email)
    return list(first.values())


def _phone_numbers(answer: Answer, text: str) -> list[str]:
    """A phone answer's numbers: one per value when the key came several times (a browser
    form with two inputs of that name), each once, not the values joined into one number."""
    if not isinstance(answer, list):
        return [text]
    return list(dict.fromkeys(number for item in answer if (number := as_text(item))))


def _without_invisible(answer: Answer) -> Answer:
    if isinstance(answer, str):
        return answer.translate(INVISIBLE_IN_ONE_LINE)
    if isinstance(answer, list):
        # Each value once: a form whose "confirm your email" input has the email's name posts
        # it twice, and "a@x.org, a@x.org" is no email. Alike as `_differs` tells them, around
        # spaces too (a space typed after one of them). (The notes keep every value typed.)
        return list(dict.fromkeys(text.translate(INVISIBLE_IN_ONE_LINE).strip() for text in answer))
    if isinstance(answer, dict):
        return {key: text.translate(INVISIBLE_IN_ONE_LINE) for key, text in answer.items()}
    return answer


def _convert(rule: FieldRule, text: str) -> Any:
    if rule.values is not None:
        # Exact label first, then ignoring case: labels are typed by people.
        if text in rule.values:
            return rule.values[text]
        folded = {label.casefold(): value for label, value in rule.values.items()}
        if text.casefold() in folded:
            return folded[text.casefold()]
    if rule.to == "country_code":
        # Unknown countries stay as given so validation names the field.
        return rules.country_code_for(text) or text
    if rule.to == "type_code":
        if text.isascii() and text.isdigit() and len(text) <= 3:  # int() takes other digits
            return int(text)
        return TYPE_CODES_BY_NAME.get(text.casefold(), text)
    if rule.to == "doctor_type":
        normal = re.sub(r"[\s-]+", "_", text.casefold())
        return normal if normal in rules.DOCTOR_TYPES else text
    return text
