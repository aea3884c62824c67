"""The email as the person meant it: every format character out, every visible one kept."""

from __future__ import annotations

import sys
import unicodedata

from cliniko_automations.common.person_keys import clean_email


def test_every_format_character_is_taken_out_of_an_email():
    invisible = "".join(
        chr(code) for code in range(sys.maxunicode + 1) if unicodedata.category(chr(code)) == "Cf"
    )
    assert len(invisible) > 150
    assert clean_email(f" a{invisible}@b.org{invisible} ") == "a@b.org"


def test_an_address_keeps_every_visible_character():
    typed = "\u200b Ann.Lee+café@exam\u00adple.org\ufeff "
    assert clean_email(typed) == "Ann.Lee+café@example.org"
