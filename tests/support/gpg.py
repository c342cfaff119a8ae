"""Drive real GnuPG in a throw-away home directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import List, Optional, Sequence


class GnuPG:
    """A temporary GNUPGHOME; call close() (or use `with`) to stop its agents."""

    def __init__(self, keyserver: Optional[str] = None) -> None:
        self.home = tempfile.mkdtemp(prefix="cks-gpg-")
        os.chmod(self.home, 0o700)
        self.keyserver = keyserver
        if keyserver:
            with open(os.path.join(self.home, "dirmngr.conf"), "w") as conf:
                conf.write("keyserver %s\n" % keyserver)

    def __enter__(self) -> "GnuPG":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        subprocess.run(["gpgconf", "--homedir", self.home, "--kill", "all"],
                       capture_output=True, check=False)
        shutil.rmtree(self.home, ignore_errors=True)

    def run(self, args: Sequence[str], input: Optional[bytes] = None,
            check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = ["gpg", "--homedir", self.home, "--batch", "--no-tty", "--yes"] + list(args)
        result = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout,
                                env=dict(os.environ, LC_ALL="C.UTF-8", TZ="UTC"))
        if check and result.returncode != 0:
            raise AssertionError("gpg %s failed (%d): %s" % (
                " ".join(args), result.returncode, result.stderr.decode(errors="replace")))
        return result

    def show(self, data: bytes) -> List[dict]:
        """What `gpg --with-colons --import-options show-only --import` says of `data`."""
        out = self.run(["--with-colons", "--fixed-list-mode", "--import-options",
                        "show-only", "--import"], input=data, check=False).stdout
        return parse_colons(out.decode("utf-8", "replace"))

    def fingerprints(self) -> List[str]:
        out = self.run(["--with-colons", "--list-keys"], check=False).stdout.decode()
        return [k["fingerprint"] for k in parse_colons(out)]


def _unescape(text: str) -> str:
    """GnuPG escapes ':' and control bytes in colon listings as \\xNN."""
    out, i = bytearray(), 0
    raw = text.encode("utf-8")
    while i < len(raw):
        if raw[i:i + 2] == b"\\x" and i + 4 <= len(raw):
            out.append(int(raw[i + 2:i + 4], 16))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return out.decode("utf-8", "replace")


def parse_colons(text: str) -> List[dict]:
    """Keys from a --with-colons listing: pub/sub/uid/uat/fpr records."""
    keys: List[dict] = []
    last = None
    for line in text.splitlines():
        f = line.split(":")
        kind = f[0]
        if kind == "pub":
            last = {"validity": f[1], "bits": int(f[2]), "algo": int(f[3]), "keyid": f[4],
                    "created": int(f[5]), "expires": int(f[6]) if f[6] else None,
                    "uids": [], "uats": 0, "subkeys": [], "revokers": []}
            keys.append(last)
        elif kind == "sub":
            last = {"validity": f[1], "bits": int(f[2]), "algo": int(f[3]), "keyid": f[4],
                    "created": int(f[5]), "expires": int(f[6]) if f[6] else None}
            keys[-1]["subkeys"].append(last)
        elif kind == "fpr" and last is not None:
            last["fingerprint"] = f[9]
            last = None
        elif kind == "uid":
            keys[-1]["uids"].append({"validity": f[1], "text": _unescape(f[9])})
        elif kind == "uat":
            keys[-1]["uats"] += 1
        elif kind == "rvk":
            keys[-1]["revokers"].append(f[9])
    return keys
