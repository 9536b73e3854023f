"""A real SMTP server for the email tests: aiosmtpd with STARTTLS required (a test certificate) and AUTH
(PLAIN/LOGIN) required after TLS. Every accepted message is parsed with Python's email package and written as
one JSON file (from, to, subject, Message-ID, the text and HTML parts) into the output folder, atomically.

Usage: smtp_server.py PORT OUT_DIR CERT KEY USER PASSWORD
Env: SMTP_FAIL_FIRST=N answers the first N messages with 451 (a transient failure); SMTP_IMPLICIT_TLS=1 speaks
TLS from the first byte (port 465 style) instead of STARTTLS. Each record names the client's port, so a test
sees which messages shared a session.
"""

import email
import email.policy
import json
import os
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, out_dir, cert, key, user, password = sys.argv[1:7]
fail_first = int(os.environ.get("SMTP_FAIL_FIRST", "0"))
lock = threading.Lock()
seen = {"n": 0}


class Handler:
    async def handle_DATA(self, server, session, envelope):
        with lock:
            seen["n"] += 1
            n = seen["n"]
        if n <= fail_first:
            return "451 4.3.0 try again later"
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        text = msg.get_body(("plain",))
        html = msg.get_body(("html",))
        record = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "subject": str(msg["subject"]),
            "message_id": str(msg["message-id"]),
            "content_type": msg.get_content_type(),
            "text": text.get_content() if text is not None else None,
            "html": html.get_content() if html is not None else None,
            "tls": session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None,
            "authenticated": bool(session.authenticated),
            "client_port": session.peer[1] if session.peer else None,
        }
        path = os.path.join(out_dir, "%06d.json" % n)
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 2.0.0 queued as %06d" % n


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == user
        and auth_data.password.decode() == password
    )
    # handled=False: aiosmtpd answers 535 itself (handled=True would leave the client waiting).
    return AuthResult(success=ok, handled=False)


context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
if os.environ.get("SMTP_IMPLICIT_TLS") == "1":
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=int(port),
        ssl_context=context,
        authenticator=authenticator,
        auth_required=True,
        # The whole session is TLS; aiosmtpd's check looks only for STARTTLS, so it would hide AUTH.
        auth_require_tls=False,
    )
else:
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=int(port),
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=True,
    )
controller.start()
print("ready", flush=True)
threading.Event().wait()
