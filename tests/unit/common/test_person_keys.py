"""The email as the person meant it: the format characters cleaning takes out are Unicode's."""

from __future__ import annotations

import sys
import unicodedata

from cliniko_automations.common.person_keys import FORMAT_RANGES, clean_email


def test_the_format_characters_are_unicode_s_category_cf():
    # Written out for the runtime's Unicode (3.13: 15.1) so the cold start does not load
    # unicodedata; this Python's own Cf set must be in it, and nothing it knows as other.
    listed = {code for low, high in FORMAT_RANGES for code in range(low, high + 1)}
    for code in range(sys.maxunicode + 1):
        category = unicodedata.category(chr(code))
        assert (code in listed) == (category == "Cf") or category == "Cn", hex(code)
    assert all(clean_email(chr(code)) == "" for code in listed)


def test_an_address_keeps_every_visible_character():
    typed = "\u200b Ann.Lee+café@exam\u00adple.org\ufeff "
    assert clean_email(typed) == "Ann.Lee+café@example.org"
