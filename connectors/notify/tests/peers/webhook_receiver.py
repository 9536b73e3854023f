"""A webhook receiver that verifies every delivery with the `standardwebhooks` package (the Standard Webhooks
reference library) and records it as one JSON line: webhook-id, whether the signature verified, the status it
answered, whether the id was seen before (a duplicate), and the body.

Usage: webhook_receiver.py PORT SECRET OUT_FILE
Env: WEBHOOK_FAIL_FIRST=N answers the first N (verified) deliveries with 503.
"""

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

port, secret, out_file = sys.argv[1:4]
fail_first = int(os.environ.get("WEBHOOK_FAIL_FIRST", "0"))
hook = Webhook(secret)
lock = threading.Lock()
state = {"n": 0, "accepted": set()}


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            hook.verify(body, headers)
            verified = True
        except Exception as e:  # noqa: BLE001 - any failure is a refused delivery
            verified = False
            error = str(e)
        wid = headers.get("webhook-id")
        with lock:
            state["n"] += 1
            if not verified:
                status = 401
            elif state["n"] <= fail_first:
                status = 503
            else:
                status = 204
            duplicate = status == 204 and wid in state["accepted"]
            if status == 204:
                state["accepted"].add(wid)
            with open(out_file, "a") as f:
                f.write(json.dumps({
                    "id": wid,
                    "verified": verified,
                    "status": status,
                    "duplicate": duplicate,
                    "signature": headers.get("webhook-signature"),
                    "body": body.decode("utf-8", "replace"),
                    "error": None if verified else error,
                }) + "\n")
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", int(port)), Receiver)
print("ready", flush=True)
server.serve_forever()
