"""Schemathesis hooks for tests/schemathesis/run.sh (loaded with SCHEMATHESIS_HOOKS=hooks).

The generated requests run as an admin, and some of them may legitimately end that
admin's session: logout, users.delete, users.update (deactivate), roles.removeUserFromRole.
Schemathesis reuses values it saw in earlier answers (ids, usernames), so over a long
run it does. Rather than filter those requests out, the run keeps every one and the
auth provider below replaces the identity when it stops being a working admin: a new
admin is created out of band with the admin CLI (`statusd user add`, which a running
SQLite server picks up within a second), so no generated request can prevent it.
"""

import atexit
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request

import schemathesis

URL = os.environ["STATUSD_URL"]
BIN = os.environ["STATUSD_BIN"]
DATABASE_URL = os.environ["STATUSD_DATABASE_URL"]
PASSWORD = os.environ["STATUSD_ADMIN_PASS"]

replaced = []


def _request(path, body=None, creds=None):
    headers = {"Content-Type": "application/json"}
    if creds:
        headers["X-User-Id"], headers["X-Auth-Token"] = creds
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{URL}/api/v1/{path}", data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        return err.code, None


def _is_admin(creds):
    status, me = _request("me", creds=creds)
    return status == 200 and "admin" in (me or {}).get("roles", [])


def new_admin(prefix="st-admin"):
    """Creates an admin with the CLI and logs it in: (user id, token)."""
    name = f"{prefix}-{secrets.token_hex(4)}"
    subprocess.run(
        [BIN, "user", "add", name, "--password", PASSWORD, "--email", f"{name}@example.com", "--role", "admin"],
        env={"PATH": os.environ.get("PATH", ""), "DATABASE_URL": DATABASE_URL, "RUST_LOG": "warn"},
        check=True,
        capture_output=True,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status, body = _request("login", {"user": name, "password": PASSWORD})
        if status == 200:
            return body["data"]["userId"], body["data"]["authToken"]
        time.sleep(0.2)
    raise RuntimeError(f"the server did not pick up the admin {name} made with the CLI")


@schemathesis.auth(refresh_interval=600, retry_on=[401, 403])
class RotatingAdmin:
    """X-User-Id / X-Auth-Token of a working admin; checked again after a 401 or 403."""

    def __init__(self):
        self.creds = None

    def get(self, case, ctx):
        if self.creds is None or not _is_admin(self.creds):
            if self.creds is not None:
                replaced.append(time.time())
            self.creds = new_admin()
        return self.creds

    def set(self, case, data, ctx):
        if case.headers is None:
            case.headers = {}
        case.headers["X-User-Id"], case.headers["X-Auth-Token"] = data


@atexit.register
def _report():
    print(f"statusd hooks: the test admin was replaced {len(replaced)} times", file=sys.stderr)
