"""What a profile asks for, in matchable form: keyword variants, author names and excluded
phrases.

Everything here is pure text handling; `ranking` turns the results into matrices.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_NAME_SUFFIXES = {"jr", "sr", "ii", "iii", "iv"}
# Transliterations so that "Müller" (→ "muller") and "Mueller" meet.
_DIGRAPHS = (("ae", "a"), ("oe", "o"), ("ue", "u"))


def fold_text(text: str) -> str:
    """Lower case without accents: what every comparison in this module uses."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char)).lower()


def keyword_variants(term: str) -> tuple[str, ...]:
    """The keyword and its singular/plural twin ("neural network" ~ "neural networks").

    Toggling the number of the last word stands in for stemming, which would make the
    vocabulary (and so section labels) unreadable.
    """
    text = " ".join(fold_text(term).split())
    if not text:
        return ()
    head, _, last = text.rpartition(" ")
    prefix = f"{head} " if head else ""
    if len(last) < 4 or not last.isalpha():
        return (text,)
    if last.endswith("ies"):
        twin = last[:-3] + "y"
    elif last.endswith(("sses", "xes", "ches", "shes")):
        twin = last[:-2]
    elif last.endswith("s") and not last.endswith(("ss", "us", "is", "as")):
        twin = last[:-1]
    elif last.endswith("y") and last[-2] not in "aeiou":
        twin = last[:-1] + "ies"
    elif last.endswith(("s", "x", "ch", "sh")):
        twin = last + "es"
    else:
        twin = last + "s"
    return (text, prefix + twin)


def phrase_tokens(phrase: str) -> tuple[str, ...]:
    """The words of a phrase, folded; punctuation between words does not matter."""
    return tuple(re.findall(r"\w+", fold_text(phrase)))


def compile_phrase(tokens: tuple[str, ...]) -> re.Pattern[str]:
    """Whole-word match of consecutive `tokens` in folded text ("self supervised" ~ "Self-Supervised")."""
    body = r"\W+".join(re.escape(token) for token in tokens)
    return re.compile(rf"(?<!\w){body}(?!\w)")


def find_excluded(excluded: Iterable[str], text: str) -> list[str]:
    """The excluded words or phrases that occur in `text` as whole words, ignoring case and accents."""
    folded = fold_text(text)
    hits = []
    for phrase in excluded:
        tokens = phrase_tokens(phrase)
        if tokens and compile_phrase(tokens).search(folded):
            hits.append(phrase)
    return hits


def author_key(name: str) -> tuple[str, str]:
    """(surname, initials) of a name, tolerant of accents, initials and "Surname, Given".

    "Geoffrey E. Hinton", "G. Hinton" and "Hinton, Geoffrey" give ("hinton", "ge"),
    ("hinton", "g") and ("hinton", "g").
    """
    folded = fold_text(name)
    if "," in folded:
        surname_part, _, given_part = folded.partition(",")
    else:
        words = [word for word in re.split(r"[\s.]+", folded) if word]
        while len(words) > 1 and words[-1].strip(".") in _NAME_SUFFIXES:
            words.pop()
        surname_part, given_part = (words[-1] if words else ""), " ".join(words[:-1])
    surname_words = re.findall(r"[a-z\-']+", surname_part)
    surname = re.sub(r"[^a-z]", "", surname_words[-1]) if surname_words else ""
    for digraph, letter in _DIGRAPHS:
        surname = surname.replace(digraph, letter)
    initials = "".join(word[0] for word in re.findall(r"[a-z]+", given_part) if word not in _NAME_SUFFIXES)
    return surname, initials


def same_author(followed: tuple[str, str], candidate: tuple[str, str]) -> bool:
    """Same surname and compatible first initial (a missing initial matches any)."""
    if not followed[0] or followed[0] != candidate[0]:
        return False
    return not followed[1] or not candidate[1] or followed[1][0] == candidate[1][0]
