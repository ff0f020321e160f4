#!/usr/bin/env python3
"""Drives BitlBee over IRC with a purple-rocketchat account on statusd (behind nginx
with TLS) and checks what a BitlBee user sees. Prints one line per check, "ok: WHAT" or
"FAILED: WHAT" (tests/bitlbee/run.sh counts them), and anything else as context.

Usage: drive.py IRC_PORT STATUSD_URL TLS_HOST:PORT ADMIN ADMIN_PASS BITLBEE_LOG
(BITLBEE_LOG: BitlBee's output with purple's debug log, where the plugin logs every
frame it receives.)
"""

import json
import socket
import sys
import threading
import time
import urllib.request

IRC_PORT, STATUSD, TLS_SERVER, ADMIN, ADMIN_PASS, LOG = sys.argv[1:7]
ACCOUNT = "alice"
ACCOUNT_PASS = "alice-BitlBee-1"
BUDDY = "bob"
BUDDY_PASS = "bob-BitlBee-1"


# --- REST, straight to statusd ------------------------------------------------------
def rest(method, path, session=None, body=None):
    req = urllib.request.Request(f"{STATUSD}/api/v1/{path}", method=method)
    if session:
        req.add_header("X-User-Id", session["userId"])
        req.add_header("X-Auth-Token", session["authToken"])
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, data, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def login(user, password):
    status, body = rest("POST", "login", body={"user": user, "password": password})
    assert status == 200, (status, body)
    return body["data"]


def create_user(admin, username, password):
    status, body = rest("POST", "users.create", admin, {
        "username": username, "name": f"{username.title()} Test",
        "email": f"{username}@example.com", "password": password, "roles": ["user"]})
    assert status == 200, (status, body)
    return body["user"]["_id"]


def status_of(admin, uid):
    status, body = rest("GET", f"users.getStatus?userId={uid}", admin)
    assert status == 200, (status, body)
    return body["status"]


# --- IRC ------------------------------------------------------------------------------
class Irc:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
        self.lines = []
        self.lock = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        buf = b""
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            if not data:
                return
            buf += data
            while b"\r\n" in buf:
                line, buf = buf.split(b"\r\n", 1)
                text = line.decode("utf-8", "replace")
                if text.startswith("PING "):
                    self.send("PONG " + text[5:])
                    continue
                with self.lock:
                    self.lines.append(text)
                    self.lock.notify_all()

    def send(self, line):
        self.sock.sendall((line + "\r\n").encode())

    def say(self, text):
        """A command to BitlBee's control channel."""
        self.send(f"PRIVMSG &bitlbee :{text}")

    def mark(self):
        with self.lock:
            return len(self.lines)

    def wait(self, pred, timeout, since=0):
        """The first line from index `since` on that satisfies pred, or None."""
        deadline = time.monotonic() + timeout
        with self.lock:
            i = since
            while True:
                while i < len(self.lines):
                    if pred(self.lines[i]):
                        return self.lines[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.lock.wait(left)

    def who_flag(self, nick, timeout=3):
        """H (here) or G (gone: away) from /WHO for nick, None when not listed."""
        m = self.mark()
        self.send("WHO &bitlbee")
        found = None
        while True:
            line = self.wait(lambda l: " 352 " in l or " 315 " in l, timeout, m)
            if line is None or " 315 " in line:
                return found
            m = self.lines.index(line, m) + 1
            parts = line.split()
            # :server 352 me &bitlbee user host server NICK FLAGS :hops real
            if len(parts) > 8 and parts[7] == nick:
                found = parts[8][0]


results = []


def check(what, ok, detail=""):
    results.append(ok)
    print(("ok: " if ok else "FAILED: ") + what + ("" if ok else f" ({detail})"), flush=True)


def control_lines(irc, since):
    with irc.lock:
        return [l for l in irc.lines[since:] if "PRIVMSG &bitlbee" in l or "NOTICE" in l]


def main():
    admin = login(ADMIN, ADMIN_PASS)
    alice_id = create_user(admin, ACCOUNT, ACCOUNT_PASS)
    bob_id = create_user(admin, BUDDY, BUDDY_PASS)
    bob = login(BUDDY, BUDDY_PASS)

    irc = Irc(IRC_PORT)
    irc.send("NICK tester")
    irc.send("USER tester 0 * :BitlBee test")
    if irc.wait(lambda l: " 001 " in l, 10) is None:
        check("BitlBee greets the IRC client", False, "no 001")
        return
    irc.wait(lambda l: "JOIN" in l and "&bitlbee" in l, 10)
    m = irc.mark()
    irc.say(f"account add eionrobb-rocketchat {ACCOUNT}|{TLS_SERVER} {ACCOUNT_PASS}")
    added = irc.wait(lambda l: "Account successfully added" in l or "rror" in l, 10, m)
    check("account add rocketchat (the purple-rocketchat plugin is loaded)",
          added is not None and "successfully" in added, added)
    if not added or "successfully" not in added:
        print("\n".join(control_lines(irc, 0)))
        return

    m = irc.mark()
    irc.say("account 0 on")
    logged_in = irc.wait(lambda l: "Logged in" in l or "Signing off" in l or "rror" in l, 20, m)
    check("the account logs in (login over wss, then Meteor's users record)",
          logged_in is not None and "Logged in" in logged_in, logged_in)
    if not logged_in or "Logged in" not in logged_in:
        print("\n".join(control_lines(irc, m)))
        return
    check("statusd shows the BitlBee account online",
          status_of(admin, alice_id) == "online", status_of(admin, alice_id))

    # bob in the buddy list: `add` subscribes fullUserData for him (his status: offline).
    m = irc.mark()
    irc.say(f"add 0 {BUDDY}")
    irc.wait(lambda l: f"{BUDDY}" in l and ("JOIN" in l or "added" in l.lower()), 5, m)
    time.sleep(0.5)

    # A status set through REST for bob shows within a second.
    rest("POST", "users.setStatus", bob, {"status": "online", "message": ""})
    t0 = time.monotonic()
    flag = None
    while time.monotonic() - t0 < 1.0:
        flag = irc.who_flag(BUDDY, 1)
        if flag == "H":
            break
        time.sleep(0.05)
    check("bob set online through REST is here (H) in /WHO within a second", flag == "H", flag)
    rest("POST", "users.setStatus", bob, {"status": "away", "message": "at lunch"})
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.0:
        flag = irc.who_flag(BUDDY, 1)
        if flag == "G":
            break
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    check("bob set away through REST is away (G) in /WHO within a second", flag == "G",
          f"{flag} after {elapsed:.2f}s")

    # After a reconnect bob's status is right from the start.
    m = irc.mark()
    irc.say("account 0 off")
    irc.wait(lambda l: "Signing off" in l or "Disconnected" in l or "Logged out" in l, 10, m)
    time.sleep(1)
    rest("POST", "users.setStatus", bob, {"status": "busy", "message": "do not disturb"})
    m = irc.mark()
    irc.say("account 0 on")
    logged_in = irc.wait(lambda l: "Logged in" in l, 20, m)
    check("the account logs in again", logged_in is not None, logged_in)
    # statusd sends bob's record at once (activeUsers, with his new status)...
    t0 = time.monotonic()
    sent = False
    while time.monotonic() - t0 < 3.0 and not sent:
        with open(LOG, encoding="utf-8", errors="replace") as f:
            sent = any('\\"username\\":\\"bob\\"' in l and '\\"status\\":\\"busy\\"' in l
                       and '\\"msg\\":\\"added\\"' in l for l in f)
        time.sleep(0.1)
    check("after the reconnect statusd sends activeUsers with bob busy", sent)
    # ...but BitlBee dropped the account's contacts at `account off`, and the plugin
    # sets a status before it creates a buddy: a BitlBee user adds bob again, and
    # fullUserData gives his status at once.
    irc.say(f"add 0 {BUDDY}")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3.0:
        flag = irc.who_flag(BUDDY, 1)
        if flag == "G":
            break
        time.sleep(0.1)
    check("after the reconnect bob (busy) is away (G) in /WHO", flag == "G", flag)
    m = irc.mark()
    irc.say("blist all")
    line = irc.wait(lambda l: BUDDY in l and "PRIVMSG &bitlbee" in l and "rocketchat" in l, 3, m)
    print(f"    blist: {line}")
    check("blist shows bob as busy", line is not None and "Busy" in line, line)

    # /AWAY in BitlBee makes the account away on statusd.
    irc.send("AWAY :gone fishing")
    t0 = time.monotonic()
    got = None
    while time.monotonic() - t0 < 3.0:
        got = status_of(admin, alice_id)
        if got == "away":
            break
        time.sleep(0.1)
    check("/AWAY in BitlBee makes users.getStatus answer away", got == "away", got)
    irc.send("AWAY")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3.0:
        got = status_of(admin, alice_id)
        if got == "online":
            break
        time.sleep(0.1)
    check("/AWAY without a message brings the account back online", got == "online", got)

    m = irc.mark()
    irc.say("account 0 off")
    irc.wait(lambda l: "Signing off" in l or "Disconnected" in l, 10, m)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 5.0:
        got = status_of(admin, alice_id)
        if got == "offline":
            break
        time.sleep(0.2)
    check("account off: the BitlBee account goes offline on statusd", got == "offline", got)
    irc.send("QUIT :done")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a crash of the driver is a failed check, not a traceback
        check("the BitlBee scenario runs to its end", False, repr(e))
    sys.exit(0 if results and all(results) else 1)
