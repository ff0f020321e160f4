"""statusd's webhooks checked with the Standard Webhooks specification's own library.

Run by tests/clients/run.sh (STATUSD_URL, STATUSD_ADMIN_USER, STATUSD_ADMIN_PASS name
the server and its admin). An admin registers an endpoint over REST
(`statusd.webhooks.create`); a receiver in this process gets the deliveries of a
user's status changes, and `standardwebhooks.Webhook(secret).verify(...)` accepts
each one as sent and refuses it when the body or the signature is tampered with.
"""

import json
import os
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import requests
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

URL = os.environ.get("STATUSD_URL", "http://127.0.0.1:3000").rstrip("/")
ADMIN_USER = os.environ.get("STATUSD_ADMIN_USER", "admin")
ADMIN_PASS = os.environ.get("STATUSD_ADMIN_PASS", "")


def login(user, password):
    r = requests.post(f"{URL}/api/v1/login", json={"user": user, "password": password}, timeout=10)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    return {"X-User-Id": data["userId"], "X-Auth-Token": data["authToken"]}


class Receiver:
    """A local HTTP server that records every POST (raw body and headers) and answers 204."""

    def __init__(self):
        self.got = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.got.append((body, {k.lower(): v for k, v in self.headers.items()}))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, n, timeout=10):
        deadline = time.time() + timeout
        while len(self.got) < n and time.time() < deadline:
            time.sleep(0.05)
        assert len(self.got) >= n, f"{len(self.got)} of {n} deliveries: {self.got}"
        return self.got

    def close(self):
        self.server.shutdown()


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_deliveries_verify_with_the_standard_webhooks_library(receiver):
    admin = login(ADMIN_USER, ADMIN_PASS)
    suffix = secrets.token_hex(4)
    username, password = f"hook.{suffix}", secrets.token_urlsafe(12)
    r = requests.post(
        f"{URL}/api/v1/users.create",
        headers=admin,
        json={
            "username": username,
            "email": f"{username}@example.com",
            "name": username,
            "password": password,
        },
        timeout=10,
    )
    assert r.status_code == 200, r.text
    user_id = r.json()["user"]["_id"]

    r = requests.post(
        f"{URL}/api/v1/statusd.webhooks.create",
        headers=admin,
        json={"url": receiver.url, "events": ["status.changed", "status-text.changed"], "userIds": [user_id]},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    secret = body["secret"]
    assert secret.startswith("whsec_")
    hook_id = body["webhook"]["_id"]
    listed = requests.get(f"{URL}/api/v1/statusd.webhooks.list", headers=admin, timeout=10)
    assert listed.status_code == 200 and secret not in listed.text

    user = login(username, password)
    for status, message in [("busy", "in a meeting"), ("away", "in a meeting")]:
        r = requests.post(
            f"{URL}/api/v1/users.setStatus",
            headers=user,
            json={"status": status, "message": message},
            timeout=10,
        )
        assert r.status_code == 200, r.text

    # busy (status + text), then away (status only).
    got = receiver.wait(3)
    wh = Webhook(secret)
    seen = []
    for raw, headers in got:
        payload = wh.verify(raw, headers)
        assert payload == json.loads(raw)
        assert payload["data"]["userId"] == user_id
        seen.append((payload["type"], payload["data"]["status"]))
        with pytest.raises(WebhookVerificationError):
            wh.verify(raw.replace(b"busy", b"BUSY").replace(b"away", b"AWAY"), headers)
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + "A" * 43 + "=").verify(raw, headers)
    assert seen == [
        ("status.changed", "busy"),
        ("status-text.changed", "busy"),
        ("status.changed", "away"),
    ]
    assert len({h["webhook-id"] for _, h in got}) == 3

    log = requests.get(
        f"{URL}/api/v1/statusd.webhooks.deliveries",
        headers=admin,
        params={"webhookId": hook_id},
        timeout=10,
    )
    assert log.status_code == 200, log.text
    assert [d["state"] for d in log.json()["deliveries"]] == ["delivered"] * 3
    r = requests.post(
        f"{URL}/api/v1/statusd.webhooks.delete", headers=admin, json={"webhookId": hook_id}, timeout=10
    )
    assert r.status_code == 200 and r.json() == {"success": True}
