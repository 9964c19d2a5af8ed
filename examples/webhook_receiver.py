#!/usr/bin/env python3
"""A webhook receiver for trying Herald's delivery locally.

It listens on 127.0.0.1, verifies each request with the official Standard
Webhooks library (`pip install standardwebhooks`) against the subscription's
secret, prints one line per request, and answers with the status you chose
(200 by default; `--status 500` to watch retries and dead letters).

    python3 examples/webhook_receiver.py --port 9000 --secret whsec_...
"""

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    from standardwebhooks import Webhook
except ImportError:
    sys.exit("needs the Standard Webhooks library: pip install standardwebhooks")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--secret", required=True, help="the subscription's whsec_... secret")
    parser.add_argument("--status", type=int, default=200, help="the status to answer with")
    args = parser.parse_args()
    verifier = Webhook(args.secret)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                verifier.verify(body, headers)
            except Exception as e:  # the library raises its own error types
                print(f"REJECTED {headers.get('webhook-id')}: {e}", flush=True)
                self.send_response(400)
                self.end_headers()
                return
            event = json.loads(body)["data"]
            replay = headers.get("herald-replay")
            print(
                f"verified {headers['webhook-id']} {event['event_type']} "
                f"event_id={event['event_id']}"
                + (f" replay={replay}" if replay else "")
                + f" -> {args.status}",
                flush=True,
            )
            self.send_response(args.status)
            self.end_headers()

        def log_message(self, *_):
            pass

    print(f"listening on http://127.0.0.1:{args.port}, answering {args.status}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
