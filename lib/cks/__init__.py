"""CKS, the CryptNET Keyserver."""

import sys

# Every tool imports this first, before any module an older Python cannot
# even compile: an operator who copied CKS onto an old host gets this line
# instead of a traceback.  (Written for any Python, 2.7 included.)
if sys.version_info < (3, 9):
    sys.exit("CKS needs Python 3.9 or newer; this is Python %d.%d (%s)"
             % (sys.version_info[0], sys.version_info[1], sys.executable))

__version__ = "2.0.0.dev0"
