//! Meteor's transport and `users` collection: DDP in SockJS framing at
//! `/sockjs/<server>/<session>/websocket` (`o`, `a[…]`, `h`, `c[…]`), the logged-in
//! user's record sent before the login result, the `activeUsers` and `fullUserData`
//! publications and their `changed`/`removed` frames, and client messages that break
//! the framing (answered `c[3000,"Broken framing."]`, the server unharmed), a resume
//! login, and the `c[1001,…]` of a graceful stop. The frames
//! are compared byte for byte with the shapes docs/decisions.md takes from Rocket.Chat.

use crate::common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use common::ddp::{Ddp, EVENT_WAIT, REPLY_WAIT};
use common::*;

const QUIET: Duration = Duration::from_millis(400);

/// A SockJS websocket client: reads whole SockJS messages, answers DDP pings.
struct SockJs {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// DDP frames of `a[…]` messages read but not yet returned.
    queue: std::collections::VecDeque<String>,
    heartbeats: usize,
    next_id: u64,
}

/// One SockJS message as read.
#[derive(Debug, PartialEq)]
enum Got {
    /// A raw SockJS message (`o`, `h`, `a[…]`, `c[…]`).
    Text(String),
    Closed,
    TimedOut,
}

fn url(srv: &Server, server: &str, session: &str) -> String {
    format!(
        "ws://127.0.0.1:{}/sockjs/{server}/{session}/websocket",
        srv.port()
    )
}

impl SockJs {
    async fn open(srv: &Server) -> SockJs {
        let (ws, _) = tokio::time::timeout(
            REPLY_WAIT,
            tokio_tungstenite::connect_async(url(srv, "123", "pidgin42")),
        )
        .await
        .expect("connect timed out")
        .expect("the SockJS websocket opens");
        SockJs {
            ws,
            queue: Default::default(),
            heartbeats: 0,
            next_id: 0,
        }
    }

    /// Opens, checks `o` and the server id, and sends DDP `connect`.
    async fn connect(srv: &Server) -> SockJs {
        let mut c = SockJs::open(srv).await;
        assert_eq!(c.raw(REPLY_WAIT).await, Got::Text("o".into()));
        assert_eq!(
            c.raw(REPLY_WAIT).await,
            Got::Text(r#"a["{\"server_id\":\"0\"}"]"#.into())
        );
        c.send(&[r#"{"msg":"connect","version":"1","support":["1"]}"#])
            .await;
        let f = c.frame(REPLY_WAIT).await.expect("connected");
        assert_eq!(f["msg"], "connected", "{f}");
        c
    }

    /// Logs in as the plugin does (SHA-256 digest); returns the DDP frames up to and
    /// including the `updated` of the login.
    async fn login(&mut self, username: &str, password: &str) -> Vec<String> {
        let id = self.new_id();
        let login = json!({"msg": "method", "method": "login", "id": id, "params": [{
            "user": {"username": username},
            "password": {"digest": sha256_hex(password), "algorithm": "sha-256"},
        }]});
        self.send(&[&login.to_string()]).await;
        let mut frames = Vec::new();
        let deadline = Instant::now() + REPLY_WAIT;
        loop {
            let f = self.next_text(deadline).await.expect("the login's frames");
            let done = serde_json::from_str::<Value>(&f).is_ok_and(|v| v["msg"] == "updated");
            frames.push(f);
            if done {
                return frames;
            }
        }
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("t{}", self.next_id)
    }

    /// Sends DDP frames in one SockJS message.
    async fn send(&mut self, frames: &[&str]) {
        let text = serde_json::to_string(frames).unwrap();
        self.send_text(&text).await;
    }

    async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_string()))
            .await
            .expect("send");
    }

    /// The next SockJS message as sent (heartbeats included), without touching the queue.
    async fn raw(&mut self, wait: Duration) -> Got {
        match tokio::time::timeout(wait, self.ws.next()).await {
            Err(_) => Got::TimedOut,
            Ok(None) | Ok(Some(Err(_))) => Got::Closed,
            Ok(Some(Ok(Message::Text(t)))) => Got::Text(t.to_string()),
            Ok(Some(Ok(Message::Close(_)))) => Got::Closed,
            Ok(Some(Ok(other))) => Got::Text(format!("(not text: {other:?})")),
        }
    }

    /// The next DDP frame (raw text); heartbeats are counted and pings answered.
    async fn next_text(&mut self, deadline: Instant) -> Option<String> {
        loop {
            while let Some(f) = self.queue.pop_front() {
                if f == r#"{"msg":"ping"}"# {
                    self.send(&[r#"{"msg":"pong"}"#]).await;
                    continue;
                }
                return Some(f);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            match self.raw(deadline - now).await {
                Got::Text(t) if t == "h" => self.heartbeats += 1,
                Got::Text(t) => {
                    let body = t
                        .strip_prefix('a')
                        .unwrap_or_else(|| panic!("not an `a` message: {t}"));
                    let frames: Vec<String> =
                        serde_json::from_str(body).unwrap_or_else(|e| panic!("{t}: {e}"));
                    self.queue.extend(frames);
                }
                Got::Closed | Got::TimedOut => return None,
            }
        }
    }

    async fn frame(&mut self, wait: Duration) -> Option<Value> {
        let t = self.next_text(Instant::now() + wait).await?;
        Some(serde_json::from_str(&t).expect("a JSON frame"))
    }

    /// Subscribes; returns the frames up to and including `ready` (or `nosub`).
    async fn sub(&mut self, id: &str, name: &str, params: Value) -> Vec<String> {
        let sub = json!({"msg": "sub", "id": id, "name": name, "params": params});
        self.send(&[&sub.to_string()]).await;
        let mut frames = Vec::new();
        let deadline = Instant::now() + REPLY_WAIT;
        loop {
            let f = self.next_text(deadline).await.expect("the sub's frames");
            let v: Value = serde_json::from_str(&f).unwrap();
            let done = v["subs"] == json!([id]) || (v["msg"] == "nosub" && v["id"] == id);
            frames.push(f);
            if done {
                return frames;
            }
        }
    }

    /// Every DDP frame that arrives within `wait`.
    async fn drain(&mut self, wait: Duration) -> Vec<String> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        while let Some(f) = self.next_text(deadline).await {
            out.push(f);
        }
        out
    }

    /// The next `users` frame about `id`, skipping anything else.
    async fn users_frame_about(&mut self, id: &str, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            let f = self.next_text(deadline).await?;
            let v: Value = serde_json::from_str(&f).unwrap();
            if v["collection"] == "users" && v["id"] == id {
                return Some(f);
            }
        }
    }
}

fn ms(iso: &Value) -> i64 {
    parse_time(iso.as_str().expect("a time")).timestamp_millis()
}

#[tokio::test]
async fn sockjs_framing_opens_batches_and_beats() {
    let srv = Server::start_with(&[("DDP_PING_SECS", "1")]).await;
    let mut c = SockJs::connect(&srv).await;
    // Two frames in one client message: both answered, in one `a[…]`.
    c.send(&[r#"{"msg":"ping","id":"1"}"#, r#"{"msg":"ping","id":"2"}"#])
        .await;
    // (Each is answered as it is read: one `a[…]` each, as sockjs-node writes them.)
    let mut got = Vec::new();
    for _ in 0..10 {
        match c.raw(REPLY_WAIT).await {
            Got::Text(t) if t == "h" || t == r#"a["{\"msg\":\"ping\"}"]"# => continue,
            Got::Text(t) => {
                got.push(t);
                if got.len() == 2 {
                    break;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        got,
        [
            r#"a["{\"msg\":\"pong\",\"id\":\"1\"}"]"#,
            r#"a["{\"msg\":\"pong\",\"id\":\"2\"}"]"#
        ]
    );
    // A single JSON string is one frame too (sockjs-node accepts both forms).
    c.send_text(r#""{\"msg\":\"ping\",\"id\":\"3\"}""#).await;
    let f = c.frame(REPLY_WAIT).await.expect("a pong");
    assert_eq!(f, json!({"msg": "pong", "id": "3"}));
    // Heartbeats: `h` every DDP_PING_SECS, whatever else goes on.
    let deadline = Instant::now() + Duration::from_secs(4);
    while c.heartbeats < 2 && Instant::now() < deadline {
        let _ = c
            .next_text(Instant::now() + Duration::from_millis(200))
            .await;
    }
    assert!(c.heartbeats >= 2, "only {} heartbeats", c.heartbeats);

    // /sockjs/info, as a SockJS client asks first.
    let (status, headers, body) = srv.get("/sockjs/info", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["websocket"], true, "{body}");
    assert_eq!(body["cookie_needed"], false, "{body}");
    assert_eq!(body["origins"], json!(["*:*"]), "{body}");
    assert!(body["entropy"].is_u64(), "{body}");
    assert!(
        headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("no-store"),
        "{headers:?}"
    );
    // An id with a dot is not a SockJS path; neither is a plain GET an upgrade.
    for bad in ["/sockjs/123/a.b/websocket", "/sockjs/%FF/abc/websocket"] {
        let (status, _, body) = srv.get(bad, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{bad}: {body}");
    }
    let (status, _, body) = srv.get("/sockjs/123/abc/websocket", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn login_sends_the_users_record_before_the_result() {
    let srv = Server::start().await;
    let uid = srv.create_user_only("alice", "alice-Pass-1", &[]).await;
    let mut c = SockJs::connect(&srv).await;
    let frames = c.login("alice", "alice-Pass-1").await;
    assert_eq!(frames.len(), 3, "{frames:?}");
    let info = srv.info_of(&uid).await;
    let expected = format!(
        concat!(
            r#"{{"msg":"added","collection":"users","id":"{uid}","fields":{{"#,
            r#""_updatedAt":{{"$date":{updated}}},"active":true,"#,
            r#""emails":[{{"address":"alice@example.com","verified":false}}],"#,
            r#""name":"alice Name","roles":[],"statusConnection":"online","#,
            r#""statusDefault":"online","statusText":"","username":"alice","utcOffset":0}}}}"#
        ),
        uid = uid,
        updated = ms(&info["_updatedAt"]),
    );
    assert_eq!(frames[0], expected);
    let result: Value = serde_json::from_str(&frames[1]).unwrap();
    assert_eq!(result["msg"], "result", "{result}");
    assert_eq!(result["result"]["id"], uid.as_str(), "{result}");
    assert_eq!(frames[2], r#"{"msg":"updated","methods":["t1"]}"#);

    // A logout removes the record.
    let id = c.new_id();
    c.send(&[&json!({"msg": "method", "method": "logout", "id": id}).to_string()])
        .await;
    let f = c.frame(REPLY_WAIT).await.unwrap();
    assert_eq!(
        f,
        json!({"msg": "removed", "collection": "users", "id": uid})
    );

    // The raw /websocket is unchanged: the result comes first, no `users` record.
    let mut raw = Ddp::connect(&srv).await;
    raw.send(json!({"msg": "method", "method": "login", "id": "r1",
        "params": [{"user": {"username": "alice"}, "password": {"digest": sha256_hex("alice-Pass-1"), "algorithm": "sha-256"}}]}))
        .await;
    let f = raw.next_json(REPLY_WAIT).await.unwrap();
    assert_eq!(f["msg"], "result", "{f}");
}

#[tokio::test]
async fn the_own_record_changes_with_the_user() {
    // DDP_PING_SECS is also the SockJS heartbeat, at which the record is read again.
    let srv = Server::start_with(&[("DDP_PING_SECS", "1")]).await;
    let alice = srv.create_user("alice", "alice-Pass-1", &[]).await;
    let mut c = SockJs::connect(&srv).await;
    c.login("alice", "alice-Pass-1").await;
    // A status text set through REST: the record's statusText (and what the set
    // status changed) arrive as one `changed`.
    let (status, _, body) = srv
        .set_status(&alice, json!({"status": "busy", "message": "in a meeting"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let f = c
        .users_frame_about(&alice.user_id, EVENT_WAIT)
        .await
        .expect("a changed frame");
    let v: Value = serde_json::from_str(&f).unwrap();
    assert_eq!(v["msg"], "changed", "{f}");
    assert_eq!(v["fields"]["statusText"], "in a meeting", "{f}");
    assert_eq!(v["fields"]["statusDefault"], "busy", "{f}");
    // The own record has no `status` (Rocket.Chat leaves it out).
    assert!(v["fields"].get("status").is_none(), "{f}");
    // A new name: statusd's bus carries the changes others see in a status, not a name
    // alone; the record is read again at each heartbeat, so it follows within one.
    let admin = srv.admin().await;
    let (status, _, body) = srv
        .post_json(
            "users.update",
            Some(&admin),
            json!({"userId": alice.user_id, "data": {"name": "Alice Liddell"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let f = c
        .users_frame_about(&alice.user_id, EVENT_WAIT)
        .await
        .expect("a changed frame for the name");
    let v: Value = serde_json::from_str(&f).unwrap();
    assert_eq!(v["msg"], "changed", "{f}");
    assert_eq!(v["fields"]["name"], "Alice Liddell", "{f}");
    // Nothing else changed but the record's _updatedAt.
    let mut keys: Vec<&String> = v["fields"].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["_updatedAt", "name"], "{f}");
}

#[tokio::test]
async fn active_users_publishes_who_is_not_offline_and_follows_them() {
    let srv = Server::start().await;
    let alice_id = srv.create_user_only("alice", "alice-Pass-1", &[]).await;
    let bob = srv.create_user("bob", "bob-Pass-1", &[]).await;
    srv.create_user_only("carol", "carol-Pass-1", &[]).await;
    // bob is online on a DDP connection; carol never connects.
    let bob_conn = Ddp::connect_resume(&srv, &bob.token).await;
    let mut c = SockJs::connect(&srv).await;
    c.login("alice", "alice-Pass-1").await;
    let frames = c.sub("s1", "activeUsers", json!([])).await;
    // The admin never connected: offline. rocket.cat (a bot) is online. alice is in the
    // box already (her record): activeUsers' fields of hers come in one `changed`. bob
    // and rocket.cat are added with activeUsers' fields. Then ready.
    let mut expected = vec![
        r#"{"msg":"added","collection":"users","id":"rocket.cat","fields":{"name":"Rocket.Cat","status":"online","statusText":"","username":"rocket.cat","utcOffset":0}}"#.to_string(),
        format!(r#"{{"msg":"changed","collection":"users","id":"{alice_id}","fields":{{"name":"alice Name","status":"online","statusText":"","username":"alice","utcOffset":0}}}}"#),
        format!(
            r#"{{"msg":"added","collection":"users","id":"{}","fields":{{"name":"bob Name","status":"online","statusText":"","username":"bob","utcOffset":0}}}}"#,
            bob.user_id
        ),
        r#"{"msg":"ready","subs":["s1"]}"#.to_string(),
    ];
    let mut got = frames.clone();
    // alice and bob come in username order.
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "{frames:?}");

    // bob goes away through REST: one `changed` with the new status and text.
    let (status, _, body) = srv
        .set_status(&bob, json!({"status": "away", "message": "lunch"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let f = c.users_frame_about(&bob.user_id, EVENT_WAIT).await;
    assert_eq!(
        f.as_deref(),
        Some(
            format!(
                r#"{{"msg":"changed","collection":"users","id":"{}","fields":{{"status":"away","statusText":"lunch"}}}}"#,
                bob.user_id
            )
            .as_str()
        )
    );
    // bob disconnects: offline, so removed.
    bob_conn.close().await;
    let f = c.users_frame_about(&bob.user_id, EVENT_WAIT).await;
    assert_eq!(
        f.as_deref(),
        Some(
            format!(
                r#"{{"msg":"removed","collection":"users","id":"{}"}}"#,
                bob.user_id
            )
            .as_str()
        )
    );
    // Unsubscribing takes alice's status back out of her record, then nosub.
    c.send(&[r#"{"msg":"unsub","id":"s1"}"#]).await;
    let mut rest = c.drain(QUIET).await;
    assert_eq!(rest.pop().as_deref(), Some(r#"{"msg":"nosub","id":"s1"}"#));
    rest.sort();
    let mut expected = vec![
        format!(
            r#"{{"msg":"changed","collection":"users","id":"{alice_id}","cleared":["status"]}}"#
        ),
        r#"{"msg":"removed","collection":"users","id":"rocket.cat"}"#.to_string(),
    ];
    expected.sort();
    assert_eq!(rest, expected);
}

#[tokio::test]
async fn full_user_data_shows_one_user_with_rocket_chats_fields() {
    let srv = Server::start().await;
    srv.create_user_only("alice", "alice-Pass-1", &[]).await;
    let carol_id = srv.create_user_only("carol", "carol-Pass-1", &[]).await;
    let mut c = SockJs::connect(&srv).await;
    c.login("alice", "alice-Pass-1").await;
    // Another user, without view-full-other-user-info: the default fields.
    let frames = c.sub("f1", "fullUserData", json!(["carol", 1])).await;
    assert_eq!(
        frames,
        [
            format!(
                r#"{{"msg":"added","collection":"users","id":"{carol_id}","fields":{{"active":true,"name":"carol Name","status":"offline","statusText":"","type":"user","username":"carol","utcOffset":0}}}}"#
            ),
            r#"{"msg":"ready","subs":["f1"]}"#.to_string(),
        ]
    );
    // No filter and a limit of 1: nothing, just ready. An unknown user: nothing.
    assert_eq!(
        c.sub("f2", "fullUserData", json!(["", 1])).await,
        [r#"{"msg":"ready","subs":["f2"]}"#]
    );
    assert_eq!(
        c.sub("f3", "fullUserData", json!(["nobody", 1])).await,
        [r#"{"msg":"ready","subs":["f3"]}"#]
    );
    // A status change of carol's reaches the subscription.
    let carol = srv.login("carol", "carol-Pass-1").await;
    let _conn = Ddp::connect_resume(&srv, &carol.token).await;
    let f = c.users_frame_about(&carol_id, EVENT_WAIT).await;
    assert_eq!(
        f.as_deref(),
        Some(
            format!(
                r#"{{"msg":"changed","collection":"users","id":"{carol_id}","fields":{{"status":"online"}}}}"#
            )
            .as_str()
        )
    );

    // The admin (view-full-other-user-info) sees the full fields and may list.
    let admin = srv.admin().await;
    let mut a = SockJs::connect(&srv).await;
    a.login(ADMIN_USER, ADMIN_PASS).await;
    let frames = a.sub("g1", "fullUserData", json!(["carol", 1])).await;
    let v: Value = serde_json::from_str(&frames[0]).unwrap();
    let fields = v["fields"].as_object().unwrap();
    let mut keys: Vec<&str> = fields.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "active",
            "createdAt",
            "emails",
            "lastLogin",
            "name",
            "roles",
            "status",
            "statusConnection",
            "statusText",
            "type",
            "username",
            "utcOffset"
        ],
        "{v}"
    );
    assert!(fields["createdAt"]["$date"].is_i64(), "{v}");
    assert!(fields.get("services").is_none(), "{v}");
    let frames = a.sub("g2", "fullUserData", json!(["", 2])).await;
    // Two users by username (admin is in the box already: a `changed`), then ready.
    assert_eq!(frames.len(), 3, "{frames:?}");
    assert!(
        frames[0].contains(&format!(r#""id":"{}""#, admin.user_id)),
        "{frames:?}"
    );
    assert!(frames[1].contains(r#""username":"alice""#), "{frames:?}");
}

#[tokio::test]
async fn broken_sockjs_frames_close_with_an_error_frame_and_harm_nothing() {
    let srv = Server::start().await;
    let admin = srv.admin().await;
    // Each of these breaks the framing: `c[3000,"Broken framing."]`, then the close.
    let long = serde_json::to_string(&vec!["x"; 101]).unwrap();
    for broken in ["not json", r#"{"msg":"connect"}"#, "3", "[", &long] {
        let mut c = SockJs::connect(&srv).await;
        c.send_text(broken).await;
        assert_eq!(
            c.raw(REPLY_WAIT).await,
            Got::Text(r#"c[3000,"Broken framing."]"#.into()),
            "{broken}"
        );
        assert_eq!(c.raw(REPLY_WAIT).await, Got::Closed, "{broken}");
    }
    // A binary message cannot be SockJS framing either.
    let mut c = SockJs::connect(&srv).await;
    c.ws.send(Message::binary(vec![0u8, 1, 2])).await.unwrap();
    assert_eq!(
        c.raw(REPLY_WAIT).await,
        Got::Text(r#"c[3000,"Broken framing."]"#.into())
    );
    // Well framed but not DDP: answered as the raw websocket answers it.
    let mut c = SockJs::connect(&srv).await;
    c.send_text(r#"[{"msg":"ping"},"nope"]"#).await;
    assert_eq!(
        c.drain(QUIET).await,
        [
            r#"{"msg":"error","reason":"Bad request"}"#,
            r#"{"msg":"error","reason":"Bad request"}"#
        ]
    );
    // A sub before login is refused as on /websocket.
    let f = c.sub("x", "activeUsers", json!([])).await;
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(
        f[0].starts_with(r#"{"msg":"nosub","id":"x","error":"#),
        "{f:?}"
    );
    // The server is unharmed.
    let (status, _, body) = srv.get("users.getStatus", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_resume_login_gets_the_record_too_and_a_shutdown_closes_with_c() {
    let mut srv = Server::start().await;
    let alice = srv.create_user("alice", "alice-Pass-1", &[]).await;
    let mut c = SockJs::connect(&srv).await;
    // The plugin resumes with its token after its socket reconnects.
    let login = json!({"msg": "method", "method": "login", "id": "r1",
        "params": [{"resume": alice.token}]});
    c.send(&[&login.to_string()]).await;
    let first = c.frame(REPLY_WAIT).await.expect("the record");
    assert_eq!(first["msg"], "added", "{first}");
    assert_eq!(first["id"], alice.user_id.as_str(), "{first}");
    assert_eq!(first["fields"]["username"], "alice", "{first}");
    let result = c.frame(REPLY_WAIT).await.expect("the result");
    assert_eq!(result["result"]["type"], "resume", "{result}");
    let _updated = c.frame(REPLY_WAIT).await;
    // A graceful stop: `c[1001,"server shutting down"]`, then the websocket close.
    let stop = srv.stop();
    let (status, got) = tokio::join!(stop, async {
        let mut got = Vec::new();
        loop {
            match c.raw(REPLY_WAIT).await {
                Got::Text(t) if t == "h" => continue,
                Got::Text(t) => got.push(t),
                Got::Closed => return got,
                Got::TimedOut => panic!("no close; got {got:?}"),
            }
        }
    });
    assert!(status.success(), "{status:?}");
    assert_eq!(
        got.last().map(String::as_str),
        Some(r#"c[1001,"server shutting down"]"#),
        "{got:?}"
    );
}
