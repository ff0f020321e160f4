//! Realtime load: many DDP clients over real websockets, each logged in with its own
//! user's resume token, driven through phases (idle → user-status sub → user-presence
//! sub → stop) by the coordinator. Every received change is checked off by its
//! sequence number, so a lost or duplicated frame is counted, and its delivery latency
//! is measured against the send time the driver embedded in the status text.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::fixture::BenchUser;
use crate::http::new_hist;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Marker of a user-status benchmark change in the status text: `bs|<seq>|<sent µs>`.
pub const STATUS_MARK: &str = "bs|";
/// Marker of a user-presence benchmark change: `bp|<seq>|<sent µs>`.
pub const PRESENCE_MARK: &str = "bp|";

pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Idle,
    Status,
    Presence,
    Stop,
}

const SHARDS: usize = 32;

/// What every connection task reports into.
pub struct Shared {
    pub status_hist: Vec<Mutex<Histogram<u64>>>,
    pub presence_hist: Vec<Mutex<Histogram<u64>>>,
    pub status_ready: AtomicU64,
    pub presence_ready: AtomicU64,
    /// Distinct benchmark changes received, all connections together.
    pub status_frames: AtomicU64,
    pub presence_frames: AtomicU64,
    pub duplicates: AtomicU64,
    /// Frames that repeat a change's text with another status: the user's status
    /// changed again without a new text (its own connection closed, so offline). Not
    /// duplicates: issue 20 counted them as such.
    pub transitions: AtomicU64,
    pub errors: AtomicU64,
    /// Set when the pool starts closing: connections that close take their users
    /// offline, and the watchers still open get that change (with the last benchmark
    /// text); those frames are not part of the measurement.
    pub stopping: std::sync::atomic::AtomicBool,
    pub samples: Mutex<Vec<String>>,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            status_hist: (0..SHARDS).map(|_| Mutex::new(new_hist())).collect(),
            presence_hist: (0..SHARDS).map(|_| Mutex::new(new_hist())).collect(),
            status_ready: AtomicU64::new(0),
            presence_ready: AtomicU64::new(0),
            status_frames: AtomicU64::new(0),
            presence_frames: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            transitions: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            stopping: std::sync::atomic::AtomicBool::new(false),
            samples: Mutex::new(Vec::new()),
        }
    }

    pub fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut s = self.samples.lock().expect("samples");
        if s.len() < 5 {
            s.push(what);
        }
    }

    fn duplicate(&self, idx: usize, frame: &str) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
        let mut s = self.samples.lock().expect("samples");
        if s.len() < 5 {
            s.push(format!("conn {idx}: duplicate: {frame}"));
        }
    }

    pub fn merged(hists: &[Mutex<Histogram<u64>>]) -> Histogram<u64> {
        let mut out = new_hist();
        for h in hists {
            out.add(&*h.lock().expect("hist")).expect("same bounds");
        }
        out
    }
}

/// What one connection saw, returned when it stops.
pub struct ConnReport {
    /// Pool slots this connection watched through stream-user-presence.
    pub watched: Vec<usize>,
    pub status_seen: Vec<u64>,
    pub presence_seen: Vec<u64>,
}

pub fn count_bits(bits: &[u64]) -> u64 {
    bits.iter().map(|w| w.count_ones() as u64).sum()
}

pub fn has_bit(bits: &[u64], i: u64) -> bool {
    bits.get((i / 64) as usize)
        .is_some_and(|w| w & (1 << (i % 64)) != 0)
}

fn set_bit(bits: &mut Vec<u64>, i: u64) -> bool {
    let word = (i / 64) as usize;
    if bits.len() <= word {
        bits.resize(word + 1, 0);
    }
    let mask = 1u64 << (i % 64);
    let new = bits[word] & mask == 0;
    bits[word] |= mask;
    new
}

/// Finds `mark<seq>|<micros>` in a frame.
/// The status code the driver sets with change `seq` (`STATUSES` in main.rs: away,
/// busy, online).
pub fn driven_code(seq: u64) -> u64 {
    [2, 3, 1][(seq % 3) as usize]
}

/// The status code a frame carries just before its mark (`…,<code>,"bs|…`).
fn code_before(text: &str, mark: &str) -> Option<u64> {
    let at = text.find(mark)?;
    let head = text[..at].strip_suffix('"')?.strip_suffix(',')?;
    let start = head.rfind(|c: char| !c.is_ascii_digit())? + 1;
    head[start..].parse().ok()
}

/// What a frame carrying change `seq` is for a connection that has `seen` so far: the
/// delivery (first frame of that change), a duplicate (the change's own frame again),
/// or a later status transition that repeats its text (another status).
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Delivery,
    Duplicate,
    Transition,
}

fn classify(seen: &mut Vec<u64>, seq: u64, code: Option<u64>) -> Seen {
    if set_bit(seen, seq) {
        Seen::Delivery
    } else if code == Some(driven_code(seq)) {
        Seen::Duplicate
    } else {
        Seen::Transition
    }
}

fn parse_mark(text: &str, mark: &str) -> Option<(u64, u64)> {
    let at = text.find(mark)? + mark.len();
    let rest = &text[at..];
    let bar = rest.find('|')?;
    let seq = rest[..bar].parse().ok()?;
    let ts_text = &rest[bar + 1..];
    let end = ts_text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(ts_text.len());
    let ts = ts_text[..end].parse().ok()?;
    Some((seq, ts))
}

pub fn ws_config() -> WebSocketConfig {
    // Small buffers: 10,000 client connections must fit in this process too.
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
}

/// Reads frames until one contains `needle`; fails on an `error` frame or after 30 s.
pub async fn read_until(ws: &mut Ws, needle: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, ws.next())
            .await
            .context("timed out waiting for the server")?;
        match msg {
            Some(Ok(Message::Text(t))) => {
                if t.contains(needle) {
                    return Ok(t.to_string());
                }
                if t.contains(r#""msg":"ping""#) {
                    ws.send(Message::text(r#"{"msg":"pong"}"#)).await?;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => bail!("websocket: {e}"),
            None => bail!("websocket closed"),
        }
    }
}

/// Opens a DDP connection and logs in with a resume token.
pub async fn connect_login(addr: SocketAddr, token: &str) -> anyhow::Result<Ws> {
    let url = format!("ws://{addr}/websocket");
    let (ws, _) =
        tokio_tungstenite::connect_async_with_config(url.as_str(), Some(ws_config()), true)
            .await
            .context("websocket connect")?;
    login(ws, token).await
}

/// DDP `connect`, then `login` with a resume token, on an open websocket.
pub async fn login(mut ws: Ws, token: &str) -> anyhow::Result<Ws> {
    ws.send(Message::text(
        r#"{"msg":"connect","version":"1","support":["1"]}"#,
    ))
    .await?;
    read_until(&mut ws, r#""msg":"connected""#).await?;
    let login = serde_json::json!({
        "msg": "method", "method": "login", "id": "login",
        "params": [{"resume": token}],
    });
    ws.send(Message::text(login.to_string())).await?;
    let reply = read_until(&mut ws, r#""id":"login""#).await?;
    if reply.contains(r#""error""#) {
        bail!("DDP login refused: {reply}");
    }
    Ok(ws)
}

pub struct Pool {
    pub shared: Arc<Shared>,
    phase: watch::Sender<Phase>,
    tasks: Vec<tokio::task::JoinHandle<ConnReport>>,
}

/// Connects and logs in one websocket per user, `parallel` handshakes at a time.
pub async fn open_pool(
    addr: SocketAddr,
    users: &[BenchUser],
    presence_pool: &[String],
    watch_each: usize,
    parallel: usize,
) -> anyhow::Result<Pool> {
    let shared = Arc::new(Shared::new());
    let (phase, phase_rx) = watch::channel(Phase::Idle);
    let conns: Vec<anyhow::Result<(usize, Ws)>> =
        futures_util::stream::iter(users.iter().enumerate().map(|(i, u)| {
            let token = u.token.clone();
            async move { Ok((i, connect_login(addr, &token).await?)) }
        }))
        .buffer_unordered(parallel)
        .collect()
        .await;
    let pool_len = presence_pool.len();
    let mut tasks = Vec::with_capacity(conns.len());
    for c in conns {
        let (i, ws) = c?;
        let watched: Vec<usize> = if pool_len == 0 {
            Vec::new()
        } else {
            (0..watch_each.min(pool_len))
                .map(|k| (i * watch_each + k) % pool_len)
                .collect()
        };
        let ids: Vec<String> = watched.iter().map(|&s| presence_pool[s].clone()).collect();
        tasks.push(tokio::spawn(conn_task(
            i,
            ws,
            watched,
            ids,
            phase_rx.clone(),
            shared.clone(),
        )));
    }
    Ok(Pool {
        shared,
        phase,
        tasks,
    })
}

impl Pool {
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn set_phase(&self, p: Phase) {
        let _ = self.phase.send(p);
    }

    /// Waits until `counter` reaches `want` (or `limit` passes). Returns whether it did.
    pub async fn wait_for(counter: &AtomicU64, want: u64, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while counter.load(Ordering::Relaxed) < want {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Stops every connection (closing the socket) and collects what each saw.
    pub async fn stop(self) -> anyhow::Result<Vec<ConnReport>> {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.set_phase(Phase::Stop);
        let mut out = Vec::with_capacity(self.tasks.len());
        for t in self.tasks {
            out.push(t.await?);
        }
        Ok(out)
    }
}

async fn conn_task(
    idx: usize,
    mut ws: Ws,
    watched: Vec<usize>,
    watched_ids: Vec<String>,
    mut phase: watch::Receiver<Phase>,
    shared: Arc<Shared>,
) -> ConnReport {
    let shard = idx % SHARDS;
    let mut status_seen: Vec<u64> = Vec::new();
    let mut presence_seen: Vec<u64> = Vec::new();
    let mut current = Phase::Idle;
    loop {
        tokio::select! {
            changed = phase.changed() => {
                if changed.is_err() {
                    break;
                }
                let p = *phase.borrow_and_update();
                if p == current {
                    continue;
                }
                current = p;
                let frames: Vec<String> = match p {
                    Phase::Idle => vec![],
                    Phase::Status => vec![
                        r#"{"msg":"sub","id":"st","name":"stream-notify-logged","params":["user-status",false]}"#.to_string(),
                    ],
                    Phase::Presence => vec![
                        r#"{"msg":"unsub","id":"st"}"#.to_string(),
                        serde_json::json!({
                            "msg": "sub", "id": "pr", "name": "stream-user-presence",
                            "params": ["", {"added": watched_ids}],
                        })
                        .to_string(),
                    ],
                    Phase::Stop => break,
                };
                for f in frames {
                    if let Err(e) = ws.send(Message::text(f)).await {
                        shared.error(format!("conn {idx}: send: {e}"));
                        return ConnReport { watched, status_seen, presence_seen };
                    }
                }
            }
            msg = ws.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(f))) => {
                        shared.error(format!("conn {idx}: closed by the server: {f:?}"));
                        break;
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        shared.error(format!("conn {idx}: {e}"));
                        break;
                    }
                    None => {
                        shared.error(format!("conn {idx}: closed"));
                        break;
                    }
                };
                let t = text.as_str();
                if shared.stopping.load(Ordering::Relaxed) {
                    continue;
                }
                if let Some((seq, sent)) = parse_mark(t, STATUS_MARK) {
                    if t.contains("stream-notify-logged") {
                        let lat = now_micros().saturating_sub(sent).clamp(1, 60_000_000);
                        match classify(&mut status_seen, seq, code_before(t, STATUS_MARK)) {
                            Seen::Delivery => {
                                shared.status_frames.fetch_add(1, Ordering::Relaxed);
                                let _ = shared.status_hist[shard].lock().expect("hist").record(lat);
                            }
                            Seen::Duplicate => shared.duplicate(idx, t),
                            Seen::Transition => {
                                shared.transitions.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                } else if let Some((seq, sent)) = parse_mark(t, PRESENCE_MARK) {
                    if t.contains("stream-user-presence") {
                        let lat = now_micros().saturating_sub(sent).clamp(1, 60_000_000);
                        match classify(&mut presence_seen, seq, code_before(t, PRESENCE_MARK)) {
                            Seen::Delivery => {
                                shared.presence_frames.fetch_add(1, Ordering::Relaxed);
                                let _ = shared.presence_hist[shard].lock().expect("hist").record(lat);
                            }
                            Seen::Duplicate => shared.duplicate(idx, t),
                            Seen::Transition => {
                                shared.transitions.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                } else if t.contains(r#""msg":"ping""#) {
                    if let Err(e) = ws.send(Message::text(r#"{"msg":"pong"}"#)).await {
                        shared.error(format!("conn {idx}: pong: {e}"));
                        break;
                    }
                } else if t.contains(r#""msg":"ready""#) {
                    if t.contains(r#""st""#) {
                        shared.status_ready.fetch_add(1, Ordering::Relaxed);
                    } else if t.contains(r#""pr""#) {
                        shared.presence_ready.fetch_add(1, Ordering::Relaxed);
                    }
                } else if t.contains(r#""error""#) {
                    shared.error(format!("conn {idx}: {t}"));
                }
            }
        }
    }
    let _ = ws.close(None).await;
    ConnReport {
        watched,
        status_seen,
        presence_seen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_parse_out_of_frames() {
        let f = r#"{"msg":"changed","fields":{"args":[["id","u",2,"bs|17|1700000000123456","n",["user"]]]}}"#;
        assert_eq!(
            parse_mark(f, STATUS_MARK),
            Some((17, 1_700_000_000_123_456))
        );
        assert_eq!(parse_mark(f, PRESENCE_MARK), None);
        let mut bits = Vec::new();
        assert!(set_bit(&mut bits, 130));
        assert!(!set_bit(&mut bits, 130));
        assert!(has_bit(&bits, 130));
        assert_eq!(count_bits(&bits), 1);
    }

    /// Issue 20's duplicates: a watched user's connection closing sends their last text
    /// again with status 0 (offline). That is a transition, not a duplicate.
    #[test]
    fn a_repeated_text_with_another_status_is_a_transition_not_a_duplicate() {
        let busy = r#"{"msg":"changed","collection":"stream-user-presence","id":"u1","fields":{"uid":"u1","args":[["user1",3,"bp|7|1700000000123456"]],"eventName":"u1"}}"#;
        let offline = busy.replace(",3,", ",0,");
        let status = r#"{"msg":"changed","fields":{"args":[["id","u",2,"bs|17|1700000000123456","n",["user"]]]}}"#;
        assert_eq!(code_before(busy, PRESENCE_MARK), Some(3));
        assert_eq!(code_before(&offline, PRESENCE_MARK), Some(0));
        assert_eq!(code_before(status, STATUS_MARK), Some(2));
        assert_eq!(driven_code(7), 3, "change 7 sets busy");
        let mut seen = Vec::new();
        assert_eq!(classify(&mut seen, 7, Some(3)), Seen::Delivery);
        assert_eq!(classify(&mut seen, 7, Some(0)), Seen::Transition);
        assert_eq!(classify(&mut seen, 7, Some(3)), Seen::Duplicate);
    }
}
