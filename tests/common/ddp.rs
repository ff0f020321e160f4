//! A small DDP client for black-box websocket tests (CONTRACT §7).
//!
//! ```ignore
//! let mut c = Ddp::connect(&srv).await;            // greeting + connect → connected
//! c.login_password("alice", "alice-pass").await.unwrap();
//! assert_eq!(c.sub("s1", "stream-notify-logged", json!(["user-status", false])).await,
//!            json!({"msg": "ready", "subs": ["s1"]}));
//! let raw = c.next_changed(WAIT).await.expect("an event");   // the exact text frame
//! ```
//!
//! Frames are read in order. While waiting for a method result or a sub answer, any
//! `changed` frame is kept (raw text) in a queue that [`Ddp::next_changed`] serves
//! first; other unexpected frames go to [`Ddp::others`]. Server pings are answered
//! automatically unless [`Ddp::set_answer_pings`] turned that off (the pings are then
//! only counted), and are never returned to the caller.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{sha256_hex, Server};

/// How long a method result, a sub answer or the handshake may take.
pub const REPLY_WAIT: Duration = Duration::from_secs(10);
/// How long a published event may take to arrive.
pub const EVENT_WAIT: Duration = Duration::from_secs(5);

/// Status codes of `user-status` / `user-presence` events.
pub const OFFLINE: u8 = 0;
pub const ONLINE: u8 = 1;
pub const AWAY: u8 = 2;
pub const BUSY: u8 = 3;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Ddp {
    ws: Ws,
    /// `connected.session`, once connected.
    pub session: Option<String>,
    /// The logged-in user's id, once logged in.
    pub user_id: Option<String>,
    /// `changed` frames (raw text) that arrived while waiting for something else.
    changed: VecDeque<String>,
    /// Any other frames that arrived while waiting for something else.
    pub others: Vec<Value>,
    answer_pings: bool,
    /// How many server pings arrived, and the last one (raw text).
    pub pings_seen: usize,
    pub last_ping: Option<String>,
    next_id: u64,
    /// The socket was closed by the server (or failed), and how.
    pub closed: bool,
    pub close_reason: Option<String>,
}

/// One frame read from the socket.
enum Read {
    Text(String),
    Closed,
    TimedOut,
}

impl Ddp {
    /// Opens the websocket only (nothing read, nothing sent).
    pub async fn open(url: &str) -> Ddp {
        let (ws, _resp) = tokio::time::timeout(REPLY_WAIT, tokio_tungstenite::connect_async(url))
            .await
            .unwrap_or_else(|_| panic!("websocket connect to {url} timed out"))
            .unwrap_or_else(|e| panic!("websocket connect to {url} failed: {e}"));
        Ddp {
            ws,
            session: None,
            user_id: None,
            changed: VecDeque::new(),
            others: Vec::new(),
            answer_pings: true,
            pings_seen: 0,
            last_ping: None,
            next_id: 0,
            closed: false,
            close_reason: None,
        }
    }

    /// Opens, checks the greeting `{"server_id":"0"}`, sends `connect` and waits for
    /// `connected` (whose session id it keeps).
    pub async fn connect(srv: &Server) -> Ddp {
        let mut c = Ddp::open(&srv.ws_url()).await;
        let greeting = c.next_raw(REPLY_WAIT).await.expect("the greeting");
        assert_eq!(greeting, r#"{"server_id":"0"}"#, "unexpected greeting");
        c.send(json!({"msg": "connect", "version": "1", "support": ["1"]}))
            .await;
        let f = c.next_json(REPLY_WAIT).await.expect("an answer to connect");
        assert_eq!(f["msg"], "connected", "unexpected answer to connect: {f}");
        let session = f["session"].as_str().expect("connected.session");
        assert!(!session.is_empty(), "empty session id: {f}");
        assert_eq!(
            f,
            json!({"msg": "connected", "session": session}),
            "connected has extra fields"
        );
        c.session = Some(session.to_string());
        c
    }

    /// Connects and logs in with a resume token (no bcrypt cost): the cheap way to get
    /// a logged-in connection.
    pub async fn connect_resume(srv: &Server, token: &str) -> Ddp {
        let mut c = Ddp::connect(srv).await;
        c.login_resume(token)
            .await
            .unwrap_or_else(|e| panic!("resume login failed: {e}"));
        c
    }

    /// Whether server pings are answered (default) or only counted.
    pub fn set_answer_pings(&mut self, yes: bool) {
        self.answer_pings = yes;
    }

    /// A fresh method / sub id.
    pub fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("t{}", self.next_id)
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_string()))
            .await
            .unwrap_or_else(|e| panic!("sending {text}: {e}"));
    }

    /// A binary websocket frame (DDP is text).
    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.ws
            .send(Message::binary(bytes.to_vec()))
            .await
            .unwrap_or_else(|e| panic!("sending binary: {e}"));
    }

    pub async fn send(&mut self, v: Value) {
        self.send_raw(&v.to_string()).await;
    }

    /// Reads the next frame of any kind, handling pings, up to `deadline`.
    async fn read(&mut self, deadline: Instant) -> Read {
        loop {
            if self.closed {
                return Read::Closed;
            }
            let msg = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Read::TimedOut,
                Ok(None) => {
                    self.closed = true;
                    return Read::Closed;
                }
                Ok(Some(Err(e))) => {
                    self.closed = true;
                    self.close_reason = Some(format!("error: {e}"));
                    return Read::Closed;
                }
                Ok(Some(Ok(m))) => m,
            };
            let text = match msg {
                Message::Text(t) => t.to_string(),
                Message::Close(f) => {
                    self.close_reason = Some(format!("close frame: {f:?}"));
                    self.closed = true;
                    return Read::Closed;
                }
                _ => continue,
            };
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                if v["msg"] == "ping" {
                    self.pings_seen += 1;
                    self.last_ping = Some(text.clone());
                    if self.answer_pings {
                        let pong = match v.get("id") {
                            Some(id) => json!({"msg": "pong", "id": id}),
                            None => json!({"msg": "pong"}),
                        };
                        // The socket may be closing; the next read reports that.
                        let _ = self.ws.send(Message::text(pong.to_string())).await;
                    }
                    continue;
                }
            }
            return Read::Text(text);
        }
    }

    /// The next frame (raw text; server pings handled and skipped), or None on
    /// timeout or close. Queued `changed` frames are NOT served here.
    pub async fn next_raw(&mut self, wait: Duration) -> Option<String> {
        match self.read(Instant::now() + wait).await {
            Read::Text(t) => Some(t),
            Read::Closed | Read::TimedOut => None,
        }
    }

    /// [`Ddp::next_raw`] parsed as JSON.
    pub async fn next_json(&mut self, wait: Duration) -> Option<Value> {
        let t = self.next_raw(wait).await?;
        Some(serde_json::from_str(&t).unwrap_or_else(|e| panic!("frame is not JSON ({e}): {t}")))
    }

    /// Waits until a frame satisfying `pred` arrives; `changed` frames before it are
    /// queued, others kept in `others`. Panics on timeout or close.
    async fn wait_for(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> (String, Value) {
        let deadline = Instant::now() + REPLY_WAIT;
        loop {
            let text = match self.read(deadline).await {
                Read::Text(t) => t,
                Read::Closed => panic!(
                    "socket closed while waiting for {what}; others: {:?}",
                    self.others
                ),
                Read::TimedOut => {
                    panic!("no {what} within {REPLY_WAIT:?}; others: {:?}", self.others)
                }
            };
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("frame is not JSON ({e}): {text}"));
            if pred(&v) {
                return (text, v);
            }
            if v["msg"] == "changed" {
                self.changed.push_back(text);
            } else {
                self.others.push(v);
            }
        }
    }

    /// Calls a method and returns the raw `result` frame; also waits for the
    /// `{"msg":"updated","methods":[id]}` that must follow it.
    pub async fn call_raw(&mut self, method: &str, params: Value) -> (String, String) {
        let id = self.new_id();
        self.call_raw_with_id(&id, method, params).await
    }

    /// [`Ddp::call_raw`] with a chosen id. Returns (result frame, updated frame).
    pub async fn call_raw_with_id(
        &mut self,
        id: &str,
        method: &str,
        params: Value,
    ) -> (String, String) {
        self.send(json!({"msg": "method", "id": id, "method": method, "params": params}))
            .await;
        let what = format!("the result of {method} (id {id})");
        let (result, _) = self
            .wait_for(&what, |v| {
                (v["msg"] == "result" && v["id"] == id)
                    || (v["msg"] == "updated"
                        && v["methods"]
                            .as_array()
                            .is_some_and(|m| m.contains(&json!(id))))
            })
            .await;
        let rv: Value = serde_json::from_str(&result).unwrap();
        assert_eq!(
            rv["msg"], "result",
            "{method}: `updated` arrived before `result`"
        );
        let what = format!("the `updated` of {method} (id {id})");
        let (updated, _) = self
            .wait_for(&what, |v| {
                v["msg"] == "updated"
                    && v["methods"]
                        .as_array()
                        .is_some_and(|m| m.contains(&json!(id)))
            })
            .await;
        (result, updated)
    }

    /// Calls a method: `Ok(result)` (`Null` when the result has no value) or
    /// `Err(error object)`. The result frame's shape is checked.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let (result, updated) = self.call_raw(method, params).await;
        let v: Value = serde_json::from_str(&result).unwrap();
        let id = v["id"].clone();
        assert_eq!(
            serde_json::from_str::<Value>(&updated).unwrap(),
            json!({"msg": "updated", "methods": [id]}),
            "{method}: unexpected updated frame"
        );
        let obj = v.as_object().expect("result is an object");
        let extra: Vec<&String> = obj
            .keys()
            .filter(|k| !["msg", "id", "result", "error"].contains(&k.as_str()))
            .collect();
        assert!(
            extra.is_empty(),
            "{method}: result frame has extra fields: {result}"
        );
        match (obj.get("error"), obj.get("result")) {
            (Some(e), None) => Err(e.clone()),
            (None, Some(r)) => Ok(r.clone()),
            (None, None) => Ok(Value::Null),
            (Some(_), Some(_)) => panic!("{method}: result with both error and result: {result}"),
        }
    }

    /// `login` with `{user:{username}, password:{digest, algorithm:"sha-256"}}`.
    pub async fn login_password(&mut self, username: &str, password: &str) -> Result<Value, Value> {
        let r = self
            .call(
                "login",
                json!([{
                    "user": {"username": username},
                    "password": {"digest": sha256_hex(password), "algorithm": "sha-256"},
                }]),
            )
            .await;
        self.note_login(&r);
        r
    }

    /// `login` with `{resume: token}`.
    pub async fn login_resume(&mut self, token: &str) -> Result<Value, Value> {
        let r = self.call("login", json!([{"resume": token}])).await;
        self.note_login(&r);
        r
    }

    fn note_login(&mut self, r: &Result<Value, Value>) {
        if let Ok(v) = r {
            self.user_id = v["id"].as_str().map(str::to_string);
        }
    }

    /// Sends `sub` and returns the answer for it (`ready` or `nosub`), parsed.
    pub async fn sub(&mut self, id: &str, name: &str, params: Value) -> Value {
        self.send(json!({"msg": "sub", "id": id, "name": name, "params": params}))
            .await;
        let what = format!("the answer to sub {id} ({name})");
        let (_, v) = self
            .wait_for(&what, |v| {
                (v["msg"] == "ready"
                    && v["subs"].as_array().is_some_and(|s| s.contains(&json!(id))))
                    || (v["msg"] == "nosub" && v["id"] == id)
            })
            .await;
        v
    }

    /// Subscribes to `stream-notify-logged` / `user-status`; asserts `ready`.
    pub async fn sub_user_status(&mut self, id: &str) {
        let v = self
            .sub(id, "stream-notify-logged", json!(["user-status", false]))
            .await;
        assert_eq!(v, json!({"msg": "ready", "subs": [id]}), "sub user-status");
    }

    /// Sends `unsub` and returns the `nosub` for it, parsed.
    pub async fn unsub(&mut self, id: &str) -> Value {
        self.send(json!({"msg": "unsub", "id": id})).await;
        let what = format!("the nosub of unsub {id}");
        let (_, v) = self
            .wait_for(&what, |v| v["msg"] == "nosub" && v["id"] == id)
            .await;
        v
    }

    /// The next `changed` frame (raw text), queued ones first. Other frames arriving
    /// meanwhile go to `others`. None on timeout or close.
    pub async fn next_changed(&mut self, wait: Duration) -> Option<String> {
        if let Some(t) = self.changed.pop_front() {
            return Some(t);
        }
        let deadline = Instant::now() + wait;
        loop {
            let text = match self.read(deadline).await {
                Read::Text(t) => t,
                Read::Closed | Read::TimedOut => return None,
            };
            match serde_json::from_str::<Value>(&text) {
                Ok(v) if v["msg"] == "changed" => return Some(text),
                Ok(v) => self.others.push(v),
                Err(e) => panic!("frame is not JSON ({e}): {text}"),
            }
        }
    }

    /// The next `changed` frame, which must arrive within `wait`.
    #[track_caller]
    pub fn expect_changed(
        &mut self,
        wait: Duration,
    ) -> impl std::future::Future<Output = String> + '_ {
        let caller = std::panic::Location::caller();
        async move {
            self.next_changed(wait).await.unwrap_or_else(|| {
                panic!(
                    "no changed frame within {wait:?} (expected at {caller}); others: {:?}",
                    self.others
                )
            })
        }
    }

    /// Skips `changed` frames until one for which `pred(parsed)` holds; returns it raw.
    /// None if none arrives within `wait`.
    pub async fn changed_matching(
        &mut self,
        wait: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let text = self.next_changed(left).await?;
            let v: Value = serde_json::from_str(&text).unwrap();
            if pred(&v) {
                return Some(text);
            }
        }
    }

    /// Asserts no `changed` frame is queued or arrives within `wait`.
    pub async fn expect_no_changed(&mut self, wait: Duration) {
        if let Some(t) = self.next_changed(wait).await {
            panic!("unexpected changed frame: {t}");
        }
    }

    /// Forgets queued `changed` frames and reads (and drops) those arriving within `wait`.
    pub async fn drain_changed(&mut self, wait: Duration) -> Vec<String> {
        let mut out: Vec<String> = self.changed.drain(..).collect();
        while let Some(t) = self.next_changed(wait).await {
            out.push(t);
        }
        out
    }

    /// Waits until the server closes the socket (true) or `wait` passes (false).
    /// Frames arriving meanwhile are kept as usual.
    pub async fn wait_closed(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            match self.read(deadline).await {
                Read::Closed => return true,
                Read::TimedOut => return false,
                Read::Text(t) => match serde_json::from_str::<Value>(&t) {
                    Ok(v) if v["msg"] == "changed" => self.changed.push_back(t),
                    Ok(v) => self.others.push(v),
                    Err(_) => self.others.push(Value::String(t)),
                },
            }
        }
    }

    /// Closes the socket politely (close frame) and waits briefly for the server's.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}

// ---------------------------------------------------------- expected frames

fn js(v: impl serde::Serialize) -> String {
    serde_json::to_string(&v).unwrap()
}

/// The exact `stream-notify-logged` / `user-status` frame (CONTRACT §7) for `args`
/// (the inner array: `[uid, username, code, statusText, name, roles, …]`).
pub fn user_status_frame(args: &Value) -> String {
    format!(
        r#"{{"msg":"changed","collection":"stream-notify-logged","id":"id","fields":{{"eventName":"user-status","args":[{}]}}}}"#,
        js(args)
    )
}

/// The exact `stream-user-presence` frame (CONTRACT §7).
pub fn user_presence_frame(uid: &str, username: &str, code: u8, text: &str) -> String {
    let uid = js(uid);
    format!(
        r#"{{"msg":"changed","collection":"stream-user-presence","id":{uid},"fields":{{"uid":{uid},"args":[[{},{code},{}]],"eventName":{uid}}}}}"#,
        js(username),
        js(text)
    )
}

/// The exact DDP error object (as Meteor sends it, with `isClientSafe`).
pub fn meteor_error(code: Value, reason: &str) -> Value {
    let c = match &code {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    json!({
        "isClientSafe": true,
        "error": code,
        "reason": reason,
        "message": format!("{reason} [{c}]"),
        "errorType": "Meteor.Error",
    })
}

/// A user as the user-status stream describes them.
#[derive(Clone, Debug)]
pub struct Who {
    pub id: String,
    pub username: String,
    pub name: String,
    pub roles: Value,
}

impl Who {
    /// A user made by `Server::create_user(username, …, roles)` (name "<username> Name").
    pub fn created(id: &str, username: &str, roles: &[&str]) -> Who {
        Who {
            id: id.to_string(),
            username: username.to_string(),
            name: format!("{username} Name"),
            roles: json!(roles),
        }
    }

    /// The 6-element event of a user with no statusSource / statusExpiresAt.
    pub fn status6(&self, code: u8, text: &str) -> String {
        user_status_frame(&json!([
            self.id,
            self.username,
            code,
            text,
            self.name,
            self.roles
        ]))
    }

    /// The 8-element (Rocket.Chat 8.6) event: `…, roles, statusSource, statusExpiresAt`.
    pub fn status8(&self, code: u8, text: &str, source: &str, expires: Option<&str>) -> String {
        user_status_frame(&json!([
            self.id,
            self.username,
            code,
            text,
            self.name,
            self.roles,
            source,
            expires
        ]))
    }

    pub fn presence(&self, code: u8, text: &str) -> String {
        user_presence_frame(&self.id, &self.username, code, text)
    }
}

// ------------------------------------------------------------- REST helpers

impl Server {
    /// Polls `users.getStatus` (as the admin) until `status` is `want`; panics after `wait`.
    pub async fn wait_status(&self, user_id: &str, want: &str, wait: Duration) -> Value {
        let deadline = Instant::now() + wait;
        loop {
            let body = self.status_of(user_id).await;
            if body["status"] == want {
                return body;
            }
            if Instant::now() >= deadline {
                panic!("status of {user_id} is not {want} after {wait:?}: {body}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The server's `live_connections` gauge from `/metrics`.
    pub async fn live_connections(&self) -> i64 {
        let (status, _, text) = self
            .request_text(reqwest::Method::GET, "/metrics", None, &[], None)
            .await;
        assert_eq!(status, 200, "/metrics: {text}");
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (name, value) = l.split_once(' ')?;
                let name = name.split('{').next()?;
                if name.ends_with("live_connections") {
                    value.trim().parse::<f64>().ok().map(|v| v as i64)
                } else {
                    None
                }
            })
            .unwrap_or_else(|| panic!("no live_connections gauge in /metrics:\n{text}"))
    }

    /// Polls `/metrics` until the live realtime connections number `want`.
    pub async fn wait_live_connections(&self, want: i64, wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            let n = self.live_connections().await;
            if n == want {
                return;
            }
            if Instant::now() >= deadline {
                panic!("live_connections is {n}, not {want}, after {wait:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `users.getStatus` as the user themself (so `connectionStatus` is included).
    pub async fn own_status(&self, s: &super::Session) -> Value {
        let (status, _, body) = self.get("users.getStatus", Some(s)).await;
        assert_eq!(status, 200, "users.getStatus (self): {body}");
        body
    }
}
