"""The setup token made for people (issue 20): Crockford base32, at least 128 bits, shown
grouped by 4, accepted in any case, with or without dashes or spaces, with the look-alikes
read as Crockford reads them, and nothing else."""

import os
import re

from hypothesis import given
from hypothesis import strategies as st
from support.base import make_host_root

from host.core import token

# 28 characters of the alphabet, as read_token gives them.
compact_tokens = st.text(token.ALPHABET, min_size=28, max_size=28)
# What the alphabet leaves out, and what a person might type for them.
LOOK_ALIKES = {"0": "Oo", "1": "IiLl"}


def test_a_known_token_and_its_display_form():
    assert token.for_people("0123456789ABCDEFGHJKMNPQRSTV") == (
        "0123-4567-89AB-CDEF-GHJK-MNPQ-RSTV")
    assert token.normalised("0123-4567-89ab-cdef-ghjk-mnpq-rstv") == (
        "0123456789ABCDEFGHJKMNPQRSTV")
    assert token.normalised("o123 4567 89ab cdef ghjk mnpq rstv") == (
        "0123456789ABCDEFGHJKMNPQRSTV")
    assert token.normalised("OlI34567-89AB-CDEF-GHJK-MNPQ-RSTV") == (
        "01134567" "89ABCDEFGHJKMNPQRSTV")


def test_the_alphabet_is_crockfords_and_a_token_holds_at_least_128_bits():
    every = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    assert "".join(sorted(set(every) - set("ILOU"))) == token.ALPHABET
    assert token.TOKEN_CHARACTERS * 5 >= 128


def test_rotate_writes_a_new_grouped_token_the_old_one_stops_matching(tmp_path):
    make_host_root(tmp_path)
    user = os.environ.get("USER", "root")
    first = token.ensure_token(tmp_path, owner=user)
    path = token.token_path(tmp_path)
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){6}\n",
                        path.read_text())
    assert path.read_text().strip() == token.for_people(first)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    second = token.rotate_token(tmp_path, owner=user)
    assert second != first and token.read_token(tmp_path) == second
    assert token.matches(token.for_people(second), token.read_token(tmp_path))
    assert not token.matches(token.for_people(first), token.read_token(tmp_path))


@given(secret=compact_tokens, data=st.data())
def test_any_case_dashes_or_spaces_anywhere_and_look_alikes_spell_the_token(secret, data):
    written = []
    for character in secret:
        character = data.draw(st.sampled_from(
            [character, character.lower(), *LOOK_ALIKES.get(character, "")]))
        written.append(data.draw(st.sampled_from(["", "-", " "])) + character)
    presented = "".join(written) + data.draw(st.sampled_from(["", "-", " "]))
    assert token.normalised(presented) == secret
    assert token.matches(presented, secret)
    assert token.matches(token.for_people(secret).lower(), secret)


@given(secret=compact_tokens, position=st.integers(0, 27), data=st.data())
def test_one_character_changed_is_another_token(secret, position, data):
    other = data.draw(st.sampled_from(token.ALPHABET).filter(lambda c: c != secret[position]))
    changed = secret[:position] + other + secret[position + 1:]
    assert token.normalised(changed) == changed and not token.matches(changed, secret)


@given(secret=compact_tokens, position=st.integers(0, 28),
       intruder=st.sampled_from(["U", "u", "_", "+", "/", "=", ".", "\t", "\n", "\x00", "%"]))
def test_a_character_outside_the_alphabet_spells_no_token(secret, position, intruder):
    presented = secret[:position] + intruder + secret[position:]
    assert token.normalised(presented) is None
    assert not token.matches(presented, secret)


# Non-ASCII look-alikes of what a token holds: fullwidth digits and letters, the dotless i
# and long s (which str.upper() turns into I and S), Cyrillic and Greek capitals, a
# non-breaking space and a Unicode dash.
CONFUSABLES = ("".join(map(chr, [*range(0xFF10, 0xFF1A), *range(0xFF21, 0xFF3B)]))  # fullwidth
               + "\u0131\u017f"  # dotless i, long s
               + "\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425"  # Cyrillic
               + "\u0391\u0392\u0395\u0396\u0397\u039a\u039c\u039d\u039f\u03a1\u03a4"  # Greek
               + "\u00a0\u2010\u2013")  # a non-breaking space, a hyphen, an en dash


@given(secret=compact_tokens, position=st.integers(0, 27),
       confusable=st.sampled_from(CONFUSABLES))
def test_unicode_confusables_are_never_accepted(secret, position, confusable):
    replaced = secret[:position] + confusable + secret[position + 1:]
    assert token.normalised(replaced) is None
    assert token.normalised(token.for_people(secret) + confusable) is None
    assert not token.matches(replaced, secret)


@given(secret=compact_tokens, length=st.integers(0, 80))
def test_only_28_characters_spell_a_token(secret, length):
    presented = (secret * 3)[:length]
    assert (token.normalised(presented) is not None) == (length == 28)


@given(padding=st.integers(0, 200))
def test_a_value_longer_than_any_way_of_writing_a_token_is_refused_unread(padding):
    spaced = " ".join("0123456789ABCDEFGHJKMNPQRSTV")  # the longest a person would write
    assert token.normalised(spaced) == "0123456789ABCDEFGHJKMNPQRSTV"
    presented = "-" * (token.MAX_PRESENTED - len(spaced) + 1 + padding) + spaced
    assert token.normalised(presented) is None
