//! Calendars connected by URL (issue 18, "Calendars"; `statusd.calendars.*`): against a
//! real CalDAV server (Radicale, from PyPI: scripts/test.sh installs it and exports
//! STATUSD_RADICALE; outside the script `radicale` on PATH or in
//! tests/clients/python/.venv is used) a recurring event in Europe/Berlin makes its
//! owner busy within a second of each instance's start and a manual change wins; an
//! edited event is followed; a deleted one ends the busy status. An ICS feed served
//! here answers the second fetch 304 to its `If-None-Match`; one over 5 MiB is refused.
//! A sealed password survives a restart (the key file). Route input: bad URLs, a huge
//! body, other users' calendars, exact JSON errors; the DDP methods.
//!
//! The delay from an instance's start to the busy status is printed (`--nocapture`).

use crate::common;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PASS: &str = "dav-secret-1";
/// The key that seals calendar passwords (required with PostgreSQL; with SQLite the
/// server would make calendar.key beside the database).
const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// The Radicale executable, or None (the test is skipped, loudly, outside CI).
fn radicale() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("STATUSD_RADICALE") {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "STATUSD_RADICALE={} does not exist",
            p.display()
        );
        return Some(p);
    }
    let venv =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/python/.venv/bin/radicale");
    if venv.exists() {
        return Some(venv);
    }
    let on_path = std::process::Command::new("radicale")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if on_path {
        return Some("radicale".into());
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "radicale not found (scripts/test.sh installs it)"
    );
    eprintln!("SKIPPED: radicale not found (pip install radicale, or run scripts/test.sh)");
    None
}

/// A Radicale server on a free port with its own storage and users.
struct Radicale {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Radicale {
    async fn start(exe: PathBuf, users: &[&str]) -> Radicale {
        let dir = tempfile::tempdir().unwrap();
        let htpasswd = dir.path().join("users");
        let lines: Vec<String> = users.iter().map(|u| format!("{u}:{PASS}")).collect();
        std::fs::write(&htpasswd, lines.join("\n")).unwrap();
        let port = free_port();
        let child = std::process::Command::new(exe)
            .args(["--config", ""])
            .arg("--server-hosts")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--storage-filesystem-folder")
            .arg(dir.path().join("collections"))
            .args([
                "--auth-type",
                "htpasswd",
                "--auth-htpasswd-encryption",
                "plain",
            ])
            .arg("--auth-htpasswd-filename")
            .arg(&htpasswd)
            .args(["--rights-type", "owner_only", "--logging-level", "warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("radicale starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "radicale did not listen");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Radicale {
            child,
            port,
            _dir: dir,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn dav(&self, user: &str, method: &str, path: &str, body: Option<String>) -> u16 {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, self.url(path))
            .basic_auth(user, Some(PASS));
        if let Some(b) = body {
            req = req
                .header("Content-Type", "text/calendar; charset=utf-8")
                .body(b);
        }
        let status = req.send().await.expect("radicale answers").status();
        assert!(status.is_success(), "{path}: {status}");
        status.as_u16()
    }

    /// Makes `/<user>/team/` and answers its URL.
    async fn calendar(&self, user: &str) -> String {
        let path = format!("/{user}/team/");
        self.dav(user, "MKCALENDAR", &path, None).await;
        self.url(&path)
    }

    async fn put(&self, user: &str, name: &str, ics: String) {
        self.dav(user, "PUT", &format!("/{user}/team/{name}.ics"), Some(ics))
            .await;
    }

    async fn delete(&self, user: &str, name: &str) {
        self.dav(user, "DELETE", &format!("/{user}/team/{name}.ics"), None)
            .await;
    }
}

impl Drop for Radicale {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A time `secs` from now, in whole seconds (iCalendar has no fractions).
fn later(secs: i64) -> DateTime<Utc> {
    let t = Utc::now() + chrono::Duration::seconds(secs);
    Utc.timestamp_opt(t.timestamp() + 1, 0).unwrap()
}

fn berlin(t: DateTime<Utc>) -> String {
    t.with_timezone(&chrono_tz::Europe::Berlin)
        .format("%Y%m%dT%H%M%S")
        .to_string()
}

fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

fn vcalendar(body: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//statusd tests//EN\r\n{body}END:VCALENDAR\r\n"
    )
}

fn vevent(uid: &str, summary: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    vcalendar(&format!(
        "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:{}\r\nSUMMARY:{summary}\r\nDTSTART:{}\r\nDTEND:{}\r\nEND:VEVENT\r\n",
        utc(Utc::now()),
        utc(start),
        utc(end)
    ))
}

async fn claims(srv: &Server, s: &Session) -> Value {
    let r = srv.get("statusd.claims.get", Some(s)).await;
    assert_status(&r, 200);
    r.2
}

/// Polls until `pred` holds (every 20 ms); the moment it did.
async fn wait_for(
    srv: &Server,
    s: &Session,
    until: Instant,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Instant {
    loop {
        let c = claims(srv, s).await;
        if pred(&c) {
            return Instant::now();
        }
        assert!(Instant::now() < until, "{what}: never; last {c}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn busy_with(text: &'static str) -> impl Fn(&Value) -> bool {
    move |c| {
        c["statusSource"] == "external" && c["statusDefault"] == "busy" && c["statusText"] == text
    }
}

fn not_busy(c: &Value) -> bool {
    c["statusDefault"] != "busy"
}

/// The instant (this process's clock) of a wall-clock time.
fn instant_of(t: DateTime<Utc>) -> Instant {
    let ms = (t - Utc::now()).num_milliseconds();
    if ms >= 0 {
        Instant::now() + Duration::from_millis(ms as u64)
    } else {
        Instant::now() - Duration::from_millis((-ms) as u64)
    }
}

fn ms_after(at: Instant, start: DateTime<Utc>) -> i64 {
    let s = instant_of(start);
    if at >= s {
        (at - s).as_millis() as i64
    } else {
        -((s - at).as_millis() as i64)
    }
}

async fn connect(srv: &Server, s: &Session, body: Value) -> Value {
    let r = srv
        .post_json("statusd.calendars.connect", Some(s), body)
        .await;
    assert_status(&r, 200);
    r.2["calendar"].clone()
}

async fn sync(srv: &Server, s: &Session, id: &str) -> Value {
    let r = srv
        .post_json("statusd.calendars.sync", Some(s), json!({"calendarId": id}))
        .await;
    assert_status(&r, 200);
    r.2
}

async fn caldav_server() -> Option<(Radicale, Server)> {
    let exe = radicale()?;
    let dav = Radicale::start(exe, &["alice", "bob", "carol"]).await;
    let srv = Server::start_with(&[
        ("CALENDAR_SYNC_SECS", "1"),
        ("CALENDAR_ALLOW_PRIVATE", "true"),
        ("CALENDAR_SECRET_KEY", KEY),
    ])
    .await;
    Some((dav, srv))
}

/// A recurring event in Europe/Berlin: each instance makes its owner busy within a
/// second of its start, the end frees them; a manual change during an instance wins.
async fn recurring_in_berlin(srv: &Server, dav: &Radicale) {
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let url = dav.calendar("alice").await;
    let t0 = later(6);
    let ics = vcalendar(&format!(
        "BEGIN:VEVENT\r\nUID:standup@test\r\nDTSTAMP:{}\r\nSUMMARY:Standup\r\n\
         DTSTART;TZID=Europe/Berlin:{}\r\nDTEND;TZID=Europe/Berlin:{}\r\n\
         RRULE:FREQ=SECONDLY;INTERVAL=8;COUNT=2\r\nEND:VEVENT\r\n",
        utc(Utc::now()),
        berlin(t0),
        berlin(t0 + chrono::Duration::seconds(3)),
    ));
    dav.put("alice", "standup", ics).await;
    let cal = connect(
        srv,
        &alice,
        json!({"kind": "caldav", "url": url, "login": "alice", "password": PASS}),
    )
    .await;
    assert_eq!(cal["hasPassword"], true);
    assert!(cal.get("password").is_none(), "{cal}");
    let id = cal["_id"].as_str().unwrap().to_string();
    // The worker syncs a new calendar at once; this sync may find it done (unchanged).
    let r = sync(srv, &alice, &id).await;
    assert_eq!(r["sync"]["events"], 2, "{r}");
    assert!(r["sync"].get("error").is_none(), "{r}");
    assert_eq!(r["calendar"]["events"], 2);

    for (n, start) in [t0, t0 + chrono::Duration::seconds(8)]
        .into_iter()
        .enumerate()
    {
        let end = start + chrono::Duration::seconds(3);
        let at = wait_for(
            srv,
            &alice,
            instant_of(start) + Duration::from_secs(1),
            "busy at the instance's start",
            busy_with("Standup"),
        )
        .await;
        let delay = ms_after(at, start);
        println!("calendar_sync: CalDAV recurring instance {n}: busy {delay} ms after its start");
        assert!(delay >= -300, "busy {delay} ms before the start");
        if n == 0 {
            let at = wait_for(
                srv,
                &alice,
                instant_of(end) + Duration::from_secs(1),
                "free at the end",
                not_busy,
            )
            .await;
            println!(
                "calendar_sync: CalDAV recurring instance {n}: free {} ms after its end",
                ms_after(at, end)
            );
        } else {
            // A manual change during the instance wins, and the end leaves it.
            let r = srv
                .set_status(&alice, json!({"status": "away", "message": "lunch"}))
                .await;
            assert_reply(&r, 200, json!({"success": true}));
            tokio::time::sleep_until((instant_of(end) + Duration::from_millis(1500)).into()).await;
            let c = claims(srv, &alice).await;
            assert_eq!(
                (&c["statusDefault"], &c["statusSource"], &c["statusText"]),
                (&json!("away"), &json!("manual"), &json!("lunch")),
                "{c}"
            );
        }
    }
}

/// An event moved to a later time (PUT again) is followed: busy at the new start,
/// not at the old one.
async fn edited_event(srv: &Server, dav: &Radicale) {
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let url = dav.calendar("bob").await;
    let old = later(5);
    dav.put(
        "bob",
        "review",
        vevent(
            "review@test",
            "Review",
            old,
            old + chrono::Duration::seconds(3),
        ),
    )
    .await;
    let cal = connect(
        srv,
        &bob,
        json!({"kind": "caldav", "url": url, "login": "bob", "password": PASS}),
    )
    .await;
    let id = cal["_id"].as_str().unwrap().to_string();
    assert_eq!(sync(srv, &bob, &id).await["sync"]["events"], 1);
    let new = old + chrono::Duration::seconds(6);
    dav.put(
        "bob",
        "review",
        vevent(
            "review@test",
            "Review moved",
            new,
            new + chrono::Duration::seconds(3),
        ),
    )
    .await;
    // The worker (every second) picks the change up; nothing happens at the old time.
    loop {
        let c = claims(srv, &bob).await;
        assert!(!busy_with("Review")(&c), "busy at the old time: {c}");
        if Instant::now() > instant_of(old) + Duration::from_secs(3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let at = wait_for(
        srv,
        &bob,
        instant_of(new) + Duration::from_secs(1),
        "busy at the new start",
        busy_with("Review moved"),
    )
    .await;
    println!(
        "calendar_sync: CalDAV edited event: busy {} ms after its new start",
        ms_after(at, new)
    );
    let r = srv.get("statusd.calendars.list", Some(&bob)).await;
    assert_eq!(r.2["calendars"][0]["events"], 1, "{}", r.2);
}

/// A deleted event (DELETE) ends the busy status within the sync interval.
async fn deleted_event(srv: &Server, dav: &Radicale) {
    let carol = srv.create_user("carol", "carol-pass-1", &["user"]).await;
    let url = dav.calendar("carol").await;
    let start = later(4);
    dav.put(
        "carol",
        "offsite",
        vevent(
            "offsite@test",
            "Offsite",
            start,
            start + chrono::Duration::seconds(60),
        ),
    )
    .await;
    // No explicit sync: the worker finds it.
    connect(
        srv,
        &carol,
        json!({"kind": "caldav", "url": url, "login": "carol", "password": PASS}),
    )
    .await;
    let at = wait_for(
        srv,
        &carol,
        instant_of(start) + Duration::from_secs(1),
        "busy at the start (worker only)",
        busy_with("Offsite"),
    )
    .await;
    println!(
        "calendar_sync: CalDAV event synced by the worker: busy {} ms after its start",
        ms_after(at, start)
    );
    dav.delete("carol", "offsite").await;
    let deleted = Instant::now();
    let at = wait_for(
        srv,
        &carol,
        deleted + Duration::from_secs(4),
        "free after the DELETE",
        |c| c.get("statusSource").is_none() && c["statusDefault"] == "online",
    )
    .await;
    println!(
        "calendar_sync: CalDAV deleted event: busy status ended {} ms after the DELETE",
        (at - deleted).as_millis()
    );
}

#[tokio::test]
async fn caldav_calendars_drive_the_busy_status() {
    let Some((dav, srv)) = caldav_server().await else {
        return;
    };
    tokio::join!(
        recurring_in_berlin(&srv, &dav),
        edited_event(&srv, &dav),
        deleted_event(&srv, &dav)
    );
}

/// A tiny ICS feed: answers 304 to `If-None-Match` of its ETag; records the requests.
async fn feed(ics: String) -> (String, Arc<Mutex<Vec<String>>>) {
    feed_with(ics, None).await
}

/// As [`feed`], answering 401 unless the request carries `Authorization: <auth>`.
async fn feed_with(ics: String, auth: Option<String>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/team.ics", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<String>>> = Default::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = vec![0u8; 16 * 1024];
            let mut n = 0;
            while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf[n..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(k) => n += k,
                }
            }
            let head = String::from_utf8_lossy(&buf[..n]).to_lowercase();
            log.lock().unwrap().push(head.clone());
            let refused = auth
                .as_ref()
                .is_some_and(|a| !head.contains(&format!("authorization: {}", a.to_lowercase())));
            let reply = if refused {
                "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string()
            } else if head.contains("if-none-match: \"v1\"") {
                "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nConnection: close\r\n\r\n".to_string()
            } else {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/calendar\r\nETag: \"v1\"\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{ics}",
                    ics.len()
                )
            };
            let _ = conn.write_all(reply.as_bytes()).await;
            let _ = conn.shutdown().await;
        }
    });
    (url, seen)
}

#[tokio::test]
async fn an_ics_feed_is_fetched_conditionally() {
    let srv = Server::start_with(&[
        ("CALENDAR_SYNC_SECS", "3600"),
        ("CALENDAR_ALLOW_PRIVATE", "true"),
    ])
    .await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let start = later(3);
    let ics = vcalendar(&format!(
        "BEGIN:VEVENT\r\nUID:feed@test\r\nSUMMARY:Feed meeting\r\nDTSTART:{}\r\nDTEND:{}\r\nEND:VEVENT\r\n\
         BEGIN:VEVENT\r\nUID:free@test\r\nTRANSP:TRANSPARENT\r\nDTSTART:{}\r\nDTEND:{}\r\nEND:VEVENT\r\n",
        utc(start),
        utc(start + chrono::Duration::seconds(3)),
        utc(start),
        utc(start + chrono::Duration::seconds(60)),
    ));
    let (url, seen) = feed(ics).await;
    let cal = connect(&srv, &alice, json!({"url": url})).await;
    assert_eq!(
        (
            &cal["kind"],
            &cal["hasPassword"],
            &cal["includeFree"],
            &cal["events"]
        ),
        (&json!("ics"), &json!(false), &json!(false), &json!(0))
    );
    let id = cal["_id"].as_str().unwrap().to_string();
    // The worker fetches a new calendar at once (the first, unconditional request);
    // every later fetch asks If-None-Match and gets a 304.
    let first = sync(&srv, &alice, &id).await;
    assert_eq!(
        first["sync"]["events"], 1,
        "the free event left out: {first}"
    );
    let second = sync(&srv, &alice, &id).await;
    assert_eq!(second["sync"], json!({"fetch": "unchanged", "events": 1}));
    {
        let seen = seen.lock().unwrap();
        assert!(seen.len() >= 2, "{seen:?}");
        assert!(!seen[0].contains("if-none-match"), "{}", seen[0]);
        for later in &seen[1..] {
            assert!(later.contains("if-none-match: \"v1\""), "{later}");
        }
    }
    let at = wait_for(
        &srv,
        &alice,
        instant_of(start) + Duration::from_secs(1),
        "busy at the feed event's start",
        busy_with("Feed meeting"),
    )
    .await;
    println!(
        "calendar_sync: ICS feed event: busy {} ms after its start",
        ms_after(at, start)
    );
    // includeFree: the free event counts too (a new fetch after the change).
    let r = srv
        .post_json(
            "statusd.calendars.update",
            Some(&alice),
            json!({"calendarId": id, "includeFree": true}),
        )
        .await;
    assert_status(&r, 200);
    assert_eq!(sync(&srv, &alice, &id).await["sync"]["events"], 2);
    // A feed over 5 MiB is not read: the sync fails and says why; the events stay.
    let (huge_url, _) = feed(vcalendar(&"X-FILLER:padding\r\n".repeat(400_000))).await;
    let huge = connect(&srv, &alice, json!({"url": huge_url})).await;
    let huge_id = huge["_id"].as_str().unwrap();
    let r = sync(&srv, &alice, huge_id).await;
    let too_big = "the calendar is larger than 5242880 bytes";
    assert_eq!(
        r["sync"],
        json!({"fetch": "failed", "events": 0, "error": too_big}),
        "{r}"
    );
    assert_eq!(r["calendar"]["lastError"], too_big);
    // Disconnecting deletes its events and ends the busy status.
    let r = srv
        .post_json(
            "statusd.calendars.disconnect",
            Some(&alice),
            json!({"calendarId": id}),
        )
        .await;
    assert_reply(&r, 200, json!({"success": true}));
    let c = claims(&srv, &alice).await;
    assert!(not_busy(&c), "{c}");
    let r = srv.get("statusd.calendars.list", Some(&alice)).await;
    let left: Vec<&Value> = r.2["calendars"].as_array().unwrap().iter().collect();
    assert_eq!(left.len(), 1, "only the huge feed is left: {}", r.2);
    assert_eq!(left[0]["_id"], huge_id);
}

#[tokio::test]
async fn route_input_is_checked_with_exact_errors() {
    let srv = Server::start_with(&[("CALENDAR_SECRET_KEY", KEY)]).await;
    let admin = srv.admin().await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let connect_err =
        |code: &str, reason: &str| body_meteor(code, reason, "statusd.calendars.connect");
    for (url, reason) in [
        (
            "ftp://example.invalid/a.ics",
            "The URL must be http://, https:// or webcal://",
        ),
        (
            "https://me:pw@example.invalid/a.ics",
            "The URL must not hold credentials: give username and password",
        ),
        (
            "http://127.0.0.1:8080/a.ics",
            "The URL names a private address",
        ),
        (
            "http://169.254.169.254/latest/meta-data",
            "The URL names a private address",
        ),
        ("not a url", "The URL is not a valid URL"),
    ] {
        let r = srv
            .post_json(
                "statusd.calendars.connect",
                Some(&alice),
                json!({"url": url}),
            )
            .await;
        assert_reply(&r, 400, connect_err("error-invalid-calendar-url", reason));
    }
    let long = format!("https://example.invalid/{}", "a".repeat(3000));
    let r = srv
        .post_json(
            "statusd.calendars.connect",
            Some(&alice),
            json!({"url": long}),
        )
        .await;
    assert_reply(
        &r,
        400,
        connect_err(
            "error-invalid-calendar-url",
            "The URL must have 1 to 2048 characters",
        ),
    );
    let r = srv
        .post_json(
            "statusd.calendars.connect",
            Some(&alice),
            json!({"url": "https://example.invalid/a.ics", "kind": "exchange"}),
        )
        .await;
    assert_reply(
        &r,
        400,
        connect_err("error-invalid-calendar-kind", "kind must be ics or caldav"),
    );
    // A huge body: refused before it is read.
    let huge = "x".repeat(1024 * 1024 + 10);
    let r = srv
        .post_json(
            "statusd.calendars.connect",
            Some(&alice),
            json!({"url": huge}),
        )
        .await;
    assert_status(&r, 413);
    assert_eq!(r.2["success"], false);
    // Another user, without the permission: 403; with it (admin): done for them.
    let r = srv
        .post_json(
            "statusd.calendars.connect",
            Some(&alice),
            json!({"username": "bob", "url": "https://example.invalid/bob.ics"}),
        )
        .await;
    assert_reply(&r, 403, body_403());
    let r = srv
        .get(
            &format!("statusd.calendars.list?userId={}", bob.user_id),
            Some(&alice),
        )
        .await;
    assert_reply(&r, 403, body_403());
    let r = srv
        .post_json(
            "statusd.calendars.connect",
            Some(&admin),
            json!({"username": "bob", "kind": "caldav", "url": "https://dav.example.invalid/bob/team/",
                   "login": "bob", "password": "s3cret"}),
        )
        .await;
    assert_status(&r, 200);
    let cal = r.2["calendar"].clone();
    let id = cal["_id"].as_str().unwrap().to_string();
    assert_eq!(
        (
            &cal["userId"],
            &cal["login"],
            &cal["hasPassword"],
            &cal["url"]
        ),
        (
            &json!(bob.user_id),
            &json!("bob"),
            &json!(true),
            &json!("https://dav.example.invalid/bob/team/")
        )
    );
    assert!(!r.2.to_string().contains("s3cret"));
    let r = srv.get("statusd.calendars.list", Some(&bob)).await;
    assert_eq!(r.2["calendars"][0]["_id"], id.as_str());
    assert!(!r.2.to_string().contains("s3cret"));
    assert!(!srv.log().contains("s3cret"), "the password is not logged");
    // Bob's calendar answers alice as a missing one.
    for route in [
        "statusd.calendars.update",
        "statusd.calendars.disconnect",
        "statusd.calendars.sync",
    ] {
        let r = srv
            .post_json(route, Some(&alice), json!({"calendarId": id}))
            .await;
        assert_reply(
            &r,
            400,
            body_meteor("error-calendar-not-found", "No such calendar", route),
        );
    }
    let r = srv
        .post_json(
            "statusd.calendars.update",
            Some(&alice),
            json!({"calendarId": id, "url": 5}),
        )
        .await;
    assert_status(&r, 400);
    let r = srv
        .post_json(
            "statusd.calendars.sync",
            Some(&alice),
            json!({"calendarId": id, "extra": 1}),
        )
        .await;
    assert_status(&r, 400);
    // Five per user.
    for n in 0..5 {
        let r = srv
            .post_json(
                "statusd.calendars.connect",
                Some(&alice),
                json!({"url": format!("https://example.invalid/{n}.ics")}),
            )
            .await;
        assert_status(&r, 200);
    }
    let r = srv
        .post_json(
            "statusd.calendars.connect",
            Some(&alice),
            json!({"url": "https://example.invalid/6.ics"}),
        )
        .await;
    assert_reply(
        &r,
        400,
        connect_err("error-too-many-calendars", "At most 5 calendars per user"),
    );
}

/// A password survives a restart: with SQLite and no CALENDAR_SECRET_KEY the server
/// makes `calendar.key` (0600) beside the database and opens the sealed password with it
/// after the restart; the database holds no clear password. After a restart the first
/// fetch is unconditional (the kept copy was in memory).
#[tokio::test]
async fn a_sealed_password_survives_a_restart() {
    let on_postgres = std::env::var_os("STATUSD_TEST_DATABASE_URL").is_some();
    let mut env = vec![
        ("CALENDAR_SYNC_SECS", "3600"),
        ("CALENDAR_ALLOW_PRIVATE", "true"),
    ];
    if on_postgres {
        env.push(("CALENDAR_SECRET_KEY", KEY));
    }
    let mut srv = Server::start_with(&env).await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let start = later(3600);
    let ics = vevent(
        "private@test",
        "Private",
        start,
        start + chrono::Duration::hours(1),
    );
    let secret = "feed-pass-Zq81";
    let basic = {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("alice:{secret}"))
        )
    };
    let (url, seen) = feed_with(ics, Some(basic)).await;
    let cal = connect(
        &srv,
        &alice,
        json!({"url": url, "login": "alice", "password": secret}),
    )
    .await;
    let id = cal["_id"].as_str().unwrap().to_string();
    let r = sync(&srv, &alice, &id).await;
    assert_eq!(r["sync"]["events"], 1, "{r}");
    assert!(r["sync"].get("error").is_none(), "{r}");
    // A wrong password is the server's refusal, kept as the calendar's last error.
    let r = srv
        .post_json(
            "statusd.calendars.update",
            Some(&alice),
            json!({"calendarId": id, "password": "wrong"}),
        )
        .await;
    assert_status(&r, 200);
    let r = sync(&srv, &alice, &id).await;
    let refused = "the server refused the credentials (401 Unauthorized)";
    assert_eq!(
        r["sync"],
        json!({"fetch": "failed", "events": 1, "error": refused}),
        "{r}"
    );
    let r = srv
        .post_json(
            "statusd.calendars.update",
            Some(&alice),
            json!({"calendarId": id, "password": secret}),
        )
        .await;
    assert_status(&r, 200);
    if !on_postgres {
        let key = srv.data_dir().join("calendar.key");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&key).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{}", key.display());
        for f in std::fs::read_dir(srv.data_dir()).unwrap() {
            let bytes = std::fs::read(f.unwrap().path()).unwrap_or_default();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "the password is stored in clear"
            );
        }
    }
    srv.restart().await;
    let alice = srv.login("alice", "alice-pass-1").await;
    seen.lock().unwrap().clear();
    // (The worker may have fetched first: then this sync's answer is a 304.)
    let r = sync(&srv, &alice, &id).await;
    assert_eq!(r["sync"]["events"], 1, "{r}");
    assert!(r["sync"].get("error").is_none(), "{r}");
    assert_eq!(r["calendar"]["hasPassword"], true);
    let seen = seen.lock().unwrap();
    assert!(
        !seen.is_empty() && !seen[0].contains("if-none-match"),
        "{seen:?}"
    );
}

/// The DDP methods `statusd.calendars.list` and `statusd.calendars.sync`: the REST
/// routes' views and rules, on the caller's own calendars.
#[tokio::test]
async fn ddp_methods_list_and_sync_the_callers_calendars() {
    use common::ddp::{meteor_error, Ddp};
    let srv = Server::start_with(&[
        ("CALENDAR_SYNC_SECS", "3600"),
        ("CALENDAR_ALLOW_PRIVATE", "true"),
    ])
    .await;
    let alice = srv.create_user("alice", "alice-pass-1", &["user"]).await;
    let bob = srv.create_user("bob", "bob-pass-1", &["user"]).await;
    let start = later(3600);
    let (url, _) = feed(vevent(
        "d@test",
        "DDP",
        start,
        start + chrono::Duration::hours(1),
    ))
    .await;
    let cal = connect(&srv, &alice, json!({"url": url, "includeAllDay": true})).await;
    let id = cal["_id"].as_str().unwrap().to_string();
    let mut c = Ddp::connect(&srv).await;
    let e = c
        .call("statusd.calendars.list", json!([]))
        .await
        .unwrap_err();
    assert_eq!(e["error"], "error-invalid-user", "{e}");
    c.login_resume(&alice.token).await.unwrap();
    let synced = c
        .call("statusd.calendars.sync", json!([id]))
        .await
        .expect("sync");
    assert_eq!(synced["sync"]["events"], 1, "{synced}");
    let rest = srv.get("statusd.calendars.list", Some(&alice)).await;
    let listed = c
        .call("statusd.calendars.list", json!([]))
        .await
        .expect("list");
    assert_eq!(
        listed, rest.2["calendars"],
        "DDP and REST answer the same view"
    );
    assert_eq!(synced["calendar"], rest.2["calendars"][0]);
    let e = c
        .call("statusd.calendars.sync", json!([]))
        .await
        .unwrap_err();
    assert_eq!(
        (&e["error"], &e["reason"]),
        (&json!(400), &json!("Match failed"))
    );
    // Bob's view of alice's calendar: none.
    let mut b = Ddp::connect(&srv).await;
    b.login_resume(&bob.token).await.unwrap();
    assert_eq!(
        b.call("statusd.calendars.list", json!([])).await,
        Ok(json!([]))
    );
    let e = b
        .call("statusd.calendars.sync", json!([id]))
        .await
        .unwrap_err();
    let mut want = meteor_error(json!("error-calendar-not-found"), "No such calendar");
    want["details"] = json!({"method": "statusd.calendars.sync"});
    assert_eq!(e, want);
}
