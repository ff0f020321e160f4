"""statusd driven by the real PyPI client `rocketchat-api` (module rocketchat_API).

Run by tests/clients/run.sh, which starts a fresh server and passes:
  STATUSD_URL         base URL, e.g. http://127.0.0.1:40123 (no trailing slash)
  STATUSD_ADMIN_USER  username of the admin created at start
  STATUSD_ADMIN_PASS  its password

The expected bodies are those of docs/API.md §2-§4 (Rocket.Chat 7.x).
Only the library's public methods are used, as a bot or script would use them;
`call_api_get`/`call_api_post` stand in where the library has no wrapper
(it has no `users_get_status`).
"""

import os
import re
import secrets
from datetime import datetime

import pytest
from rocketchat_API.APIExceptions.RocketExceptions import (
    RocketApiException,
    RocketAuthenticationException,
)
from rocketchat_API.rocketchat import RocketChat

URL = os.environ.get("STATUSD_URL", "http://127.0.0.1:3000").rstrip("/")
ADMIN_USER = os.environ.get("STATUSD_ADMIN_USER", "admin")
ADMIN_PASS = os.environ.get("STATUSD_ADMIN_PASS", "")

ID_RE = re.compile(r"^[23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz]{17}$")
NOT_LOGGED_IN = "You must be logged in to do this."
INVALID_STATUS = "Valid status types include online, away, offline, and busy."


def parse_iso(value):
    """Parse an ISO 8601 timestamp such as 2026-11-27T02:30:00.000Z."""
    assert isinstance(value, str), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def admin():
    """The admin, logged in by the library's constructor (POST /api/v1/login)."""
    rc = RocketChat(ADMIN_USER, ADMIN_PASS, server_url=URL)
    yield rc


@pytest.fixture(scope="module")
def admin_id(admin):
    return admin.headers["X-User-Id"]


@pytest.fixture(scope="module")
def other(admin):
    """A second, ordinary user created by the admin with users_create."""
    suffix = secrets.token_hex(4)
    username = f"pyuser.{suffix}"
    password = secrets.token_urlsafe(12)
    created = admin.users_create(
        email=f"pyuser.{suffix}@example.com",
        name=f"Py User {suffix}",
        password=password,
        username=username,
    )
    return {
        "created": created,
        "username": username,
        "password": password,
        "name": f"Py User {suffix}",
        "email": f"pyuser.{suffix}@example.com",
    }


@pytest.fixture(scope="module")
def other_rc(other):
    return RocketChat(other["username"], other["password"], server_url=URL)


def test_info_is_public():
    rc = RocketChat(server_url=URL)
    info = rc.info()
    assert isinstance(info, dict)
    assert info["success"] is True


def test_constructor_logs_in_and_login_body_matches_contract(admin, admin_id):
    assert ID_RE.match(admin_id), admin_id
    assert len(admin.headers["X-Auth-Token"]) == 43

    # A second explicit login returns the whole body (CONTRACT §3).
    rc = RocketChat(server_url=URL)
    body = rc.login(ADMIN_USER, ADMIN_PASS)
    assert body["status"] == "success"
    assert body["success"] is True
    assert body["data"]["userId"] == admin_id
    assert len(body["data"]["authToken"]) == 43
    assert body["data"]["authToken"] != admin.headers["X-Auth-Token"]
    assert body["data"]["me"]["username"] == ADMIN_USER
    assert body["data"]["me"]["_id"] == admin_id
    rc.logout()


def test_login_by_email(admin_id):
    # The library sends {"user": "<email>", "password": ...} for e-mail addresses.
    rc = RocketChat("admin@example.com", ADMIN_PASS, server_url=URL)
    assert rc.headers["X-User-Id"] == admin_id
    rc.logout()


def test_wrong_password_is_refused():
    with pytest.raises(RocketAuthenticationException):
        RocketChat(ADMIN_USER, ADMIN_PASS + "-wrong", server_url=URL)


def test_bad_token_is_401_with_contract_body(admin_id):
    rc = RocketChat(user_id=admin_id, auth_token="x" * 43, server_url=URL)
    with pytest.raises(RocketApiException) as err:
        rc.me()
    assert err.value.status_code == 401
    assert err.value.response_json == {
        "success": False,
        "error": NOT_LOGGED_IN,
        "status": "error",
        "message": NOT_LOGGED_IN,
    }


def test_me(admin, admin_id):
    me = admin.me()
    assert me["success"] is True
    assert me["_id"] == admin_id
    assert me["username"] == ADMIN_USER
    assert me["email"] == "admin@example.com"
    assert "admin" in me["roles"]
    assert me["active"] is True
    # The workspace defaults (Accounts_Default_User_Preferences_*) under the user's own.
    assert me["settings"] == {"preferences": {"enableAutoAway": True, "idleTimeLimit": 300}}
    assert any(e["address"] == "admin@example.com" for e in me["emails"])
    for key in ("name", "status", "statusConnection", "statusText", "utcOffset", "avatarUrl"):
        assert key in me, key


def test_set_status_then_read_it_back(admin, admin_id):
    assert admin.users_set_status(message="In a meeting", status="busy") == {"success": True}

    # users.getPresence for oneself: presence and connectionStatus. The admin has
    # no live DDP connection, so the chosen status shows at once (CONTRACT §5).
    presence = admin.users_get_presence(user_id=admin_id)
    assert set(presence) <= {"presence", "connectionStatus", "lastLogin", "success"}, presence
    assert presence["success"] is True
    assert presence["presence"] == "busy"
    assert presence["connectionStatus"] == "offline"
    # The REST login above recorded lastLogin.
    assert "lastLogin" in presence
    parse_iso(presence["lastLogin"])

    # The same for oneself named by username.
    by_name = admin.users_get_presence(username=ADMIN_USER)
    assert by_name["presence"] == "busy"
    assert by_name["connectionStatus"] == "offline"

    # users.getStatus has no library wrapper; call_api_get is its public helper.
    status = admin.call_api_get("users.getStatus")
    assert status == {
        "_id": admin_id,
        "status": "busy",
        "connectionStatus": "offline",
        "statusSource": "manual",
        "success": True,
    }

    info = admin.users_info(user_id=admin_id)
    assert info["success"] is True
    user = info["user"]
    assert user["_id"] == admin_id
    assert user["username"] == ADMIN_USER
    assert user["status"] == "busy"
    assert user["statusText"] == "In a meeting"
    assert user["statusConnection"] == "offline"
    assert user["active"] is True
    assert user["type"] == "user"
    assert "admin" in user["roles"]
    assert "utcOffset" in user and "name" in user

    me = admin.me()
    assert me["status"] == "busy"
    assert me["statusText"] == "In a meeting"


def test_message_is_trimmed_and_empty_message_clears_text(admin, admin_id):
    assert admin.users_set_status(message="  working on it  ", status="online") == {
        "success": True
    }
    assert admin.users_info(user_id=admin_id)["user"]["statusText"] == "working on it"
    # rocketchat_API's own tests send {"message": "", "status": "online"}.
    assert admin.users_set_status(message="", status="online") == {"success": True}
    user = admin.users_info(user_id=admin_id)["user"]
    assert user["statusText"] == ""
    assert user["status"] == "online"


def test_message_alone_keeps_status(admin, admin_id):
    assert admin.users_set_status(message="Lunch", status="away") == {"success": True}
    assert admin.users_set_status(message="Still lunch") == {"success": True}
    user = admin.users_info(user_id=admin_id)["user"]
    assert user["status"] == "away"
    assert user["statusText"] == "Still lunch"


def test_invalid_status_is_rejected_and_nothing_is_written(admin, admin_id):
    assert admin.users_set_status(message="Before", status="busy") == {"success": True}
    with pytest.raises(RocketApiException) as err:
        admin.users_set_status(message="x", status="invalid")
    e = err.value
    assert e.status_code == 400
    assert e.error_type == "error-invalid-status"
    assert e.error == f"{INVALID_STATUS} [error-invalid-status]"
    assert e.response_json == {
        "success": False,
        "error": f"{INVALID_STATUS} [error-invalid-status]",
        "errorType": "error-invalid-status",
        "details": {"method": "users.setStatus"},
    }
    user = admin.users_info(user_id=admin_id)["user"]
    assert user["statusText"] == "Before"
    assert user["status"] == "busy"


def test_other_user_sets_own_status(admin, admin_id, other, other_rc):
    created = other["created"]
    assert created["success"] is True
    other_id = created["user"]["_id"]
    assert ID_RE.match(other_id), other_id
    assert created["user"]["username"] == other["username"]
    assert other_rc.headers["X-User-Id"] == other_id

    assert other_rc.users_set_status(message="Out to lunch", status="away") == {
        "success": True
    }

    # Another user's presence: only `presence`.
    assert admin.users_get_presence(username=other["username"]) == {
        "presence": "away",
        "success": True,
    }
    assert admin.users_get_presence(user_id=other_id) == {"presence": "away", "success": True}

    # Another user's status: no connectionStatus.
    assert admin.call_api_get("users.getStatus", username=other["username"]) == {
        "_id": other_id,
        "status": "away",
        "statusSource": "manual",
        "success": True,
    }

    # The user reading itself gets connectionStatus too.
    own = other_rc.users_get_presence(user_id=other_id)
    assert own["presence"] == "away"
    assert own["connectionStatus"] == "offline"
    assert own["success"] is True

    info = admin.users_info(username=other["username"])
    assert info["success"] is True
    assert info["user"]["_id"] == other_id
    assert info["user"]["statusText"] == "Out to lunch"
    assert info["user"]["status"] == "away"
    assert info["user"]["name"] == other["name"]

    me = other_rc.me()
    assert me["_id"] == other_id
    assert me["statusText"] == "Out to lunch"
    assert me["roles"] == ["user"]


def test_users_presence_with_ids_list(admin, admin_id, other, other_rc):
    # call_api_get turns a list into ids[]=a&ids[]=b, which requests sends as
    # ids%5B%5D=a&ids%5B%5D=b (CONTRACT §4 accepts it).
    other_id = other["created"]["user"]["_id"]
    assert admin.users_set_status(message="Here", status="online") == {"success": True}
    assert other_rc.users_set_status(message="Gone fishing", status="away") == {"success": True}
    body = admin.call_api_get("users.presence", ids=[admin_id, other_id])
    assert body["success"] is True
    assert isinstance(body["full"], bool)
    users = {u["_id"]: u for u in body["users"]}
    assert set(users) == {admin_id, other_id}, body
    for user in users.values():
        for key in ("_id", "username", "name", "status", "statusText", "utcOffset"):
            assert key in user, (key, user)
    assert users[admin_id]["username"] == ADMIN_USER
    assert users[admin_id]["status"] == "online"
    assert users[admin_id]["statusText"] == "Here"
    assert users[other_id]["username"] == other["username"]
    assert users[other_id]["status"] == "away"
    assert users[other_id]["statusText"] == "Gone fishing"

    # A comma-separated list, as React Native sends it, gives the same users.
    body = admin.call_api_get("users.presence", ids=f"{admin_id},{other_id}")
    assert {u["_id"] for u in body["users"]} == {admin_id, other_id}


def test_ordinary_user_cannot_set_someone_elses_status(admin, admin_id, other_rc):
    before = admin.users_info(user_id=admin_id)["user"]
    with pytest.raises(RocketApiException) as err:
        other_rc.users_set_status(message="hijacked", status="offline", userId=admin_id)
    assert err.value.status_code == 403
    assert err.value.response_json == {"success": False, "error": "unauthorized"}
    after = admin.users_info(user_id=admin_id)["user"]
    assert after["statusText"] == before["statusText"]
    assert after["status"] == before["status"]


def test_own_user_id_counts_as_self(other, other_rc):
    # Ruqola always sends its own userId; that needs no permission.
    other_id = other["created"]["user"]["_id"]
    assert other_rc.users_set_status(message="Back", status="online", userId=other_id) == {
        "success": True
    }
    assert other_rc.users_get_presence(user_id=other_id)["presence"] == "online"


def test_admin_sets_other_users_status(admin, other):
    other_id = other["created"]["user"]["_id"]
    assert admin.users_set_status(message="Set by admin", status="busy", userId=other_id) == {
        "success": True
    }
    user = admin.users_info(user_id=other_id)["user"]
    assert user["status"] == "busy"
    assert user["statusText"] == "Set by admin"


def test_unknown_target_user(admin):
    with pytest.raises(RocketApiException) as err:
        admin.users_set_status(message="x", status="busy", username="no-such-user-xyz")
    assert err.value.status_code == 400
    assert err.value.error_type == "error-invalid-user"


def test_logout_revokes_token():
    rc = RocketChat(ADMIN_USER, ADMIN_PASS, server_url=URL)
    assert rc.me()["username"] == ADMIN_USER
    assert rc.logout() == {
        "status": "success",
        "data": {"message": "You've been logged out!"},
        "success": True,
    }
    with pytest.raises(RocketApiException) as err:
        rc.me()
    assert err.value.status_code == 401
    assert err.value.error == NOT_LOGGED_IN


def test_other_user_logout(other, other_rc):
    assert other_rc.logout()["status"] == "success"
    with pytest.raises(RocketApiException) as err:
        other_rc.users_set_status(message="after logout", status="away")
    assert err.value.status_code == 401
