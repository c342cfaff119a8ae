"""`cks_admin.py show`: a key file read as `load` reads it, and its keys
listed in the style of `gpg --show-keys`."""

from __future__ import annotations

import time
from typing import List, Optional, Tuple

from ..bulk.split import key_file, read_chunks
from ..openpgp.info import KeyInfo
from ..openpgp.keys import Key, merge_all, parse_keyring
from ..pipeline import Limits, over_limits
from ..wording import counted

_USAGE = ((0x02, "S"), (0x01, "C"), (0x0C, "E"), (0x20, "A"))


def date(epoch: Optional[int]) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch)) if epoch is not None else ""


def usage(flags: Optional[int]) -> str:
    if flags is None:
        return ""
    letters = "".join(letter for bit, letter in _USAGE if flags & bit)
    return " [%s]" % letters if letters else ""


def _status(expires: Optional[int], revoked: bool, now: int) -> str:
    if revoked:
        return " [revoked]"
    if expires is None:
        return ""
    return " [%s: %s]" % ("expired" if expires <= now else "expires", date(expires))


def format_key(info: KeyInfo) -> str:
    now = int(time.time())
    lines: List[str] = [
        "pub   %s %s%s%s" % (info.algorithm_name, date(info.created), usage(info.key_flags),
                             _status(info.expires, info.revoked, now)),
        "      %s" % info.fingerprint,
    ]
    for revoker in info.designated_revokers:
        lines.append("      Revocable by: %s" % revoker)
    for uid in info.user_ids:
        marker = "[ revoked]" if uid.revoked else ("[ expired]" if uid.expires is not None
                                                   and uid.expires <= now else " " * 10)
        if uid.is_attribute:
            text = "[%s]" % counted(uid.images, "image") if uid.images else "[user attribute]"
            lines.append("uat           %s %s" % (marker, text))
        else:
            lines.append("uid           %s %s" % (marker, uid.text))
    for sub in info.subkeys:
        lines.append("sub   %s %s%s%s" % (sub.algorithm_name, date(sub.created),
                                          usage(sub.key_flags),
                                          _status(sub.expires, sub.revoked, now)))
        lines.append("      %s" % sub.fingerprint)
    lines.append("      SKS hash: %s" % info.sks_hash)
    return "\n".join(lines) + "\n"


def read_key_file(path: str, limits: Limits) -> Tuple[List[Key], List[str]]:
    """The keys of the key file `path` ('-': standard input), merged, and a
    line per problem.  It is cut into keys as `load` cuts it (bulk/split.py,
    packets over `max_key_bytes` unusable), and the keys a load would refuse
    as over a limit are left out, so it shows what a load stores: reading
    goes on after a spot whose framing breaks."""
    keys: List[Key] = []
    problems: List[str] = []
    with key_file(path) as handle:
        for chunk in read_chunks(handle, limits.max_key_bytes):
            if chunk.problem:
                problems.append("%s: %s" % (chunk.place(path), chunk.problem))
                continue
            read = parse_keyring(chunk.data)
            problems.extend("%s: %s" % (chunk.place(path), problem) for problem in read.problems)
            keys.extend(read.keys)
    loadable, refusals = _within_limits(path, merge_all(keys), limits)
    return loadable, problems + refusals


def _within_limits(path: str, keys: List[Key], limits: Limits) -> Tuple[List[Key], List[str]]:
    """The keys a load would not refuse as over a limit, and for each other
    one the line a load writes ("FILE: key FPR refused: ...")."""
    loadable: List[Key] = []
    refusals: List[str] = []
    for key in keys:
        refusal = over_limits(key, limits)
        if refusal:
            refusals.append("%s: key %s refused: %s" % (path, key.fingerprint.hex().upper(),
                                                         refusal))
        else:
            loadable.append(key)
    return loadable, refusals
