//! Meteor's transport: SockJS's websocket framing at `/sockjs/<server>/<session>/websocket`,
//! the path older DDP clients open (libpurple's `purple-rocketchat`, Meteor's own
//! browser client). The session (`session.rs`) speaks DDP through a [`Transport`] and
//! does not know which framing carries it:
//!
//! - `Raw` (`/websocket`): one DDP frame per websocket text message, as before;
//! - `SockJs`: the server opens with `o`; its DDP frames go out as `a["<json>",…]` (all
//!   the frames of one write in one message); `h` is a heartbeat; `c[code,"reason"]`
//!   precedes the websocket close. A client message is a JSON array of strings, or one
//!   JSON string (sockjs-node accepts both); each string is one DDP frame. A message
//!   that is not JSON is answered `c[3000,"Broken framing."]` and the socket is closed
//!   (sockjs-node's `trans-websocket`); an element that is not a string is answered as
//!   Meteor answers a frame it cannot parse (`{"msg":"error","reason":"Bad request"}`).
//!
//! The framing rules are pure functions (`encode_messages`, `decode_client`), unit-tested
//! here.

use std::collections::VecDeque;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use serde_json::Value;
use tokio::time::{Instant, Interval, MissedTickBehavior};

/// sockjs-node's close reason for a client message it cannot parse.
pub const BROKEN_FRAMING: (u16, &str) = (3000, "Broken framing.");
/// The most DDP frames one client message may carry; more is treated as broken framing
/// (each frame is answered, so one message must not buy unbounded work).
pub const MAX_FRAMES_PER_MESSAGE: usize = 100;

/// Is `s` usable as a SockJS server or session id? sockjs-node routes `[^/.]+`; the
/// length bound is statusd's.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && !s.contains('.') && !s.contains('/')
}

/// `a[...]`: the DDP frames of one write, each as a JSON string.
pub fn encode_messages(frames: &[Utf8Bytes]) -> String {
    let mut out = String::with_capacity(2 + frames.iter().map(|f| f.len() + 8).sum::<usize>());
    out.push_str("a[");
    for (i, f) in frames.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(f.as_str()).unwrap_or_else(|_| "\"\"".into()));
    }
    out.push(']');
    out
}

/// `c[code,"reason"]`.
pub fn encode_close(code: u16, reason: &str) -> String {
    format!(
        "c[{code},{}]",
        serde_json::to_string(reason).unwrap_or_else(|_| "\"\"".into())
    )
}

/// What one client message carried.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    /// The DDP frames, as text, in order (possibly none: `[]` and the empty message).
    Frames(Vec<String>),
    /// Not JSON, not a string or an array, or too many frames.
    Broken,
}

/// Splits one client message into its DDP frames.
pub fn decode_client(text: &str) -> Decoded {
    if text.is_empty() {
        // sockjs-node ignores an empty payload.
        return Decoded::Frames(Vec::new());
    }
    // Meteor reads each element as DDP text: anything but a string cannot be a frame,
    // and reaches the DDP parser as an empty text, answered "Bad request".
    let as_text = |v: Value| match v {
        Value::String(s) => s,
        _ => String::new(),
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) if items.len() <= MAX_FRAMES_PER_MESSAGE => {
            Decoded::Frames(items.into_iter().map(as_text).collect())
        }
        Ok(Value::String(s)) => Decoded::Frames(vec![s]),
        _ => Decoded::Broken,
    }
}

/// How the DDP frames of one connection are carried.
pub enum Transport {
    Raw(WebSocket),
    SockJs(SockJs),
}

/// A SockJS websocket: the socket, the DDP frames received but not yet read, the frames
/// fed but not yet written, and the heartbeat.
pub struct SockJs {
    ws: WebSocket,
    inbox: VecDeque<String>,
    outbox: Vec<Utf8Bytes>,
    /// Set once the client broke the framing: nothing more is read.
    broken: bool,
    /// Until the session takes it (`take_heartbeat`).
    heartbeat: Option<Interval>,
}

impl Transport {
    /// A SockJS transport with a heartbeat (`h`) every `heartbeat`.
    pub fn sockjs(ws: WebSocket, heartbeat: Duration) -> Transport {
        let mut hb = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
        hb.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Transport::SockJs(SockJs {
            ws,
            inbox: VecDeque::new(),
            outbox: Vec::new(),
            broken: false,
            heartbeat: Some(hb),
        })
    }

    /// Is this Meteor's SockJS transport (whose clients expect Meteor's `users` record)?
    pub fn is_sockjs(&self) -> bool {
        matches!(self, Transport::SockJs(_))
    }

    /// Sends what opens the connection before any DDP frame (`o` for SockJS).
    pub async fn open(&mut self) -> Result<(), axum::Error> {
        match self {
            Transport::Raw(_) => Ok(()),
            Transport::SockJs(s) => s.ws.send(Message::Text("o".into())).await,
        }
    }

    /// The next client message: for SockJS each DDP frame of a message is returned as
    /// its own text message. Cancel-safe: a message read is queued before any await.
    pub async fn recv(&mut self) -> Option<Result<Message, axum::Error>> {
        let s = match self {
            Transport::Raw(ws) => return ws.recv().await,
            Transport::SockJs(s) => s,
        };
        loop {
            if let Some(frame) = s.inbox.pop_front() {
                return Some(Ok(Message::Text(frame.into())));
            }
            if s.broken {
                return None;
            }
            let msg = match s.ws.recv().await? {
                Ok(m) => m,
                Err(e) => return Some(Err(e)),
            };
            let decoded = match &msg {
                Message::Text(t) => decode_client(t.as_str()),
                // SockJS is text; a binary message cannot be framing.
                Message::Binary(_) => Decoded::Broken,
                _ => return Some(Ok(msg)),
            };
            match decoded {
                Decoded::Frames(frames) => s.inbox.extend(frames),
                Decoded::Broken => {
                    s.broken = true;
                    let (code, reason) = BROKEN_FRAMING;
                    let _ = s.close(code, reason).await;
                    return None;
                }
            }
        }
    }

    /// Queues one message (a DDP frame, or a close) without flushing.
    pub async fn feed(&mut self, msg: Message) -> Result<(), axum::Error> {
        match self {
            Transport::Raw(ws) => ws.feed(msg).await,
            Transport::SockJs(s) => match msg {
                Message::Text(t) => {
                    s.outbox.push(t);
                    Ok(())
                }
                Message::Close(frame) => {
                    let (code, reason) = frame
                        .map(|f| (f.code, f.reason.to_string()))
                        .unwrap_or((1000, "Normal closure".into()));
                    s.close(code, &reason).await
                }
                // Websocket pings and binary data have no SockJS form: DDP pings and `h`
                // keep a SockJS connection alive.
                _ => Ok(()),
            },
        }
    }

    /// Writes what was fed: for SockJS, all the queued DDP frames in one `a[...]`.
    pub async fn flush(&mut self) -> Result<(), axum::Error> {
        match self {
            Transport::Raw(ws) => ws.flush().await,
            Transport::SockJs(s) => {
                if !s.outbox.is_empty() {
                    let text = encode_messages(&s.outbox);
                    s.outbox.clear();
                    s.ws.feed(Message::Text(text.into())).await?;
                }
                s.ws.flush().await
            }
        }
    }

    pub async fn send(&mut self, msg: Message) -> Result<(), axum::Error> {
        self.feed(msg).await?;
        self.flush().await
    }

    /// Waits for the next SockJS heartbeat; never ready on a raw websocket.
    pub async fn heartbeat_due(hb: Option<&mut Interval>) {
        match hb {
            Some(i) => {
                i.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    /// The heartbeat timer, taken out so the session can wait on it beside `recv`.
    pub fn take_heartbeat(&mut self) -> Option<Interval> {
        match self {
            Transport::Raw(_) => None,
            Transport::SockJs(s) => s.heartbeat.take(),
        }
    }

    /// Sends one heartbeat (`h`); nothing on a raw websocket.
    pub async fn send_heartbeat(&mut self) -> Result<(), axum::Error> {
        match self {
            Transport::Raw(_) => Ok(()),
            Transport::SockJs(s) => s.ws.send(Message::Text("h".into())).await,
        }
    }
}

impl SockJs {
    /// `c[code,"reason"]`, then the websocket close.
    async fn close(&mut self, code: u16, reason: &str) -> Result<(), axum::Error> {
        self.ws
            .feed(Message::Text(encode_close(code, reason).into()))
            .await?;
        let frame = CloseFrame {
            code,
            reason: reason.to_string().into(),
        };
        self.ws.feed(Message::Close(Some(frame))).await?;
        self.ws.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_array_of_json_strings() {
        let frames: Vec<Utf8Bytes> = vec![r#"{"msg":"ping"}"#.into(), r#"{"a":"\"q\""}"#.into()];
        assert_eq!(
            encode_messages(&frames),
            r#"a["{\"msg\":\"ping\"}","{\"a\":\"\\\"q\\\"\"}"]"#
        );
        assert_eq!(encode_messages(&[]), "a[]");
    }

    #[test]
    fn close_frames_carry_code_and_reason() {
        assert_eq!(
            encode_close(3000, "Broken framing."),
            r#"c[3000,"Broken framing."]"#
        );
        assert_eq!(encode_close(1001, "a \"b\""), r#"c[1001,"a \"b\""]"#);
    }

    #[test]
    fn client_messages_are_arrays_or_one_string() {
        assert_eq!(
            decode_client(r#"["{\"msg\":\"ping\"}","x"]"#),
            Decoded::Frames(vec![r#"{"msg":"ping"}"#.into(), "x".into()])
        );
        assert_eq!(
            decode_client(r#""{\"msg\":\"ping\"}""#),
            Decoded::Frames(vec![r#"{"msg":"ping"}"#.into()])
        );
        assert_eq!(decode_client(""), Decoded::Frames(vec![]));
        assert_eq!(decode_client("[]"), Decoded::Frames(vec![]));
        // A non-string element cannot be a frame: the DDP parser gets an empty text.
        assert_eq!(
            decode_client(r#"[{"msg":"ping"},3]"#),
            Decoded::Frames(vec![String::new(), String::new()])
        );
        for broken in ["{\"msg\":\"ping\"}", "[", "nope", "3", "null", "a[\"x\"]"] {
            assert_eq!(decode_client(broken), Decoded::Broken, "{broken}");
        }
        let many = serde_json::to_string(&vec!["x"; MAX_FRAMES_PER_MESSAGE + 1]).unwrap();
        assert_eq!(decode_client(&many), Decoded::Broken);
    }

    #[test]
    fn ids_follow_sockjs_routing() {
        assert!(valid_id("123"));
        assert!(valid_id("pidgin42"));
        assert!(!valid_id(""));
        assert!(!valid_id("a.b"));
        assert!(!valid_id(&"x".repeat(65)));
    }
}
