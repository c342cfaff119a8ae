"""How searches compare text with user IDs: folded, so that the ways of
writing the same letters (composed or decomposed, in either case) compare
equal.  The word index (store/rows.py), exact=on (hkp/app.py) and the
address index (openpgp/userid.py, hkp/request.py) fold alike."""

from __future__ import annotations

import unicodedata


def fold(text: str) -> str:
    """`text` NFC-normalized and case-folded, and NFC again (case folding
    may leave a letter decomposed): `WEISS` and `Weiß`, `ΟΔΥΣΣΕΑΣ` and
    `οδυσσεας`, `José` typed composed or decomposed fold alike.  Turkish
    dotted and dotless i fold to i (case folding makes `İ` i + U+0307 and
    leaves `ı`, so that `İSMAİL` missed `İsmail` and `YILMAZ` `Yılmaz`): a
    search does not tell ı from i."""
    if text.isascii():
        return text.lower()
    folded = unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())
    if "\u0131" in folded or "i\u0307" in folded:
        folded = unicodedata.normalize("NFC", folded.replace("\u0131", "i")
                                       .replace("i\u0307", "i"))
    return folded


def fold_address(address: str) -> str:
    """An e-mail address as the address index holds it and a search by
    address looks for it: NFC-normalized, then lower-cased (until
    2026-12-06 only lower-cased, so that `müller@example.net` typed composed
    missed the address stored decomposed, and the reverse)."""
    if address.isascii():
        return address.lower()
    return unicodedata.normalize("NFC", address).lower()
