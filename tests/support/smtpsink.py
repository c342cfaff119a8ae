"""A minimal SMTP server for tests: accepts mail and keeps it, or refuses
chosen recipients (550) or messages over a size (552), like an MTA's
submission port."""

from __future__ import annotations

import socketserver
import threading
from typing import List, Set, Tuple


class SMTPSink:
    def __init__(self, refuse: Set[str] = frozenset(), max_size: int = 0) -> None:
        self.refuse = {a.lower() for a in refuse}
        self.max_size = max_size  # a longer message is refused (552), as Postfix does
        self.messages: List[Tuple[str, List[str], bytes]] = []  # (from, to, data)
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self) -> None:
                self.reply("220 sink ESMTP")
                sender, recipients = "", []
                while True:
                    line = self.rfile.readline().decode().rstrip("\r\n")
                    verb = line[:4].upper()
                    if not line or verb == "QUIT":
                        self.reply("221 bye")
                        return
                    if verb in ("EHLO", "HELO"):
                        self.reply("250 sink")
                    elif verb == "MAIL":
                        sender, recipients = line.split(":", 1)[1].strip(" <>"), []
                        self.reply("250 ok")
                    elif verb == "RCPT":
                        address = line.split(":", 1)[1].strip(" <>")
                        if address.lower() in sink.refuse:
                            self.reply("550 5.1.1 no such user")
                        else:
                            recipients.append(address)
                            self.reply("250 ok")
                    elif verb == "DATA":
                        self.reply("354 go on")
                        data = b""
                        for raw in iter(self.rfile.readline, b""):
                            if raw == b".\r\n":
                                break
                            data += raw[1:] if raw.startswith(b"..") else raw
                        if sink.max_size and len(data) > sink.max_size:
                            self.reply("552 5.3.4 Message size exceeds fixed limit")
                            continue
                        sink.messages.append((sender, recipients, data))
                        self.reply("250 queued")
                    else:
                        self.reply("250 ok")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    def __enter__(self) -> "SMTPSink":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
