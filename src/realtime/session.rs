//! One realtime connection: a single task that reads frames in order, answers them,
//! forwards the status events the connection listens to, pings when idle, and closes
//! when the client is silent, too slow, or the server shuts down.
//!
//! The events come through the connection's own queue in the fan-out index
//! (`bus::fanout`): after every method, sub and unsub the session tells the index what
//! it listens to now (`sync_interest`), so it is woken only by changes it has a frame
//! for. A queue that overflows closes the connection with code 1013 and a reason
//! ("slow consumer: …"), never a silent gap.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use tokio::time::{sleep_until, timeout, Instant};

use super::frame::{self, ClientFrame, FrameError};
use super::methods::{self, CallCtx, Login};
use super::publications::{self, Publications};
use super::sockjs::Transport;
use super::streams::{self, SubLimits, SubReply, Subscriber, Subscriptions};
use crate::app::Ctx;
use crate::auth::secrets;
use crate::bus::fanout::{Interest, Listener};
use crate::bus::Published;

/// A send that takes longer than this means the client is stuck: it is closed.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the answer to a client's close frame may take to go out.
const CLOSE_REPLY_TIMEOUT: Duration = Duration::from_secs(1);
/// The most queued events forwarded in one write.
const MAX_BURST: usize = 256;

struct Session {
    app: Ctx,
    id: String,
    ip: IpAddr,
    connected: bool,
    login: Option<Login>,
    subs: Subscriptions,
    /// Meteor's `users` collection (`publications.rs`).
    pubs: Publications,
    /// The connection's queue in the fan-out index, while it listens to anything.
    events: Option<Listener<Published>>,
}

/// Why the loop ended (for the close frame and the logs).
enum End {
    ClientGone,
    Silent,
    /// Closed as a slow consumer (the close frame said why).
    Slow,
    Shutdown,
    /// The token this connection logged in with was revoked or expired, or its user
    /// was disabled or deleted: like Meteor, the connection is closed (the client's
    /// reconnect then fails to resume and it logs out).
    LoggedOut,
}

/// The connection's place in the hub and the metrics, given back however its task ends
/// (a panic included: see `Drop for Session`).
struct Entered(Ctx);

impl Drop for Entered {
    fn drop(&mut self) {
        self.0.metrics.live_connections.dec();
        self.0.hub.leave();
    }
}

/// Normally `run` takes the login and removes the connection from the user's presence
/// in order. If the task panics instead, the session is dropped while unwinding with
/// its login still set: the removal is handed to a task of its own, so no panic leaves
/// a ghost "online" connection behind.
impl Drop for Session {
    fn drop(&mut self) {
        let Some(login) = self.login.take() else {
            return;
        };
        tracing::error!("a realtime connection ended abnormally; removing it from presence");
        let (app, id) = (self.app.clone(), self.id.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { methods::drop_connection(&app, &login.user_id, &id).await });
        } else {
            app.own_conns.remove(&id);
        }
    }
}

pub async fn run(app: Ctx, socket: Transport, ip: IpAddr) {
    let mut shutdown = app.hub.enter();
    app.metrics.live_connections.inc();
    let _entered = Entered(app.clone());
    let mut s = Session {
        id: secrets::new_id(),
        ip,
        connected: false,
        login: None,
        subs: Subscriptions::default(),
        pubs: Publications::new(socket.is_sockjs()),
        events: None,
        app: app.clone(),
    };
    let end = s.serve(socket, &mut shutdown).await;
    if let Some(login) = s.login.take() {
        methods::drop_connection(&app, &login.user_id, &s.id).await;
    }
    if matches!(end, End::Slow) {
        app.metrics.slow_consumers.inc();
        tracing::debug!("closed a slow realtime connection");
    }
}

impl Session {
    async fn serve(
        &mut self,
        mut ws: Transport,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> End {
        let ping_every = Duration::from_secs(self.app.cfg.ddp_ping_secs);
        let stale_after = Duration::from_secs(self.app.cfg.presence_stale_secs);
        let mut heartbeat = ws.take_heartbeat();
        if ws.open().await.is_err() || send(&mut ws, frame::server_id().into()).await.is_err() {
            return End::ClientGone;
        }
        let mut last_heard = Instant::now();
        let mut pinged_at: Option<Instant> = None;
        let mut out: Vec<Utf8Bytes> = Vec::new();
        let deadline_of = |last_heard: Instant, pinged_at: Option<Instant>| match pinged_at {
            Some(at) => (at + ping_every).min(last_heard + stale_after),
            None => (last_heard + ping_every).min(last_heard + stale_after),
        };
        // The timer and the shutdown watch live across iterations: re-creating them on
        // every wake-up registered and removed a timer and a waiter per delivered frame,
        // on locks shared by every connection. The timer is reset only when it moves.
        let mut deadline = deadline_of(last_heard, pinged_at);
        let timer = sleep_until(deadline);
        tokio::pin!(timer);
        let stop = shutdown.changed();
        tokio::pin!(stop);
        loop {
            let due = deadline_of(last_heard, pinged_at);
            if due != deadline {
                deadline = due;
                timer.as_mut().reset(deadline);
            }
            let wants_events = self.events.is_some();
            tokio::select! {
                biased;
                _ = &mut stop => {
                    let _ = ws.send(Message::Close(Some(CloseFrame { code: 1001, reason: "server shutting down".into() }))).await;
                    return End::Shutdown;
                }
                msg = ws.recv() => {
                    let text = match msg {
                        Some(Ok(Message::Text(t))) => t,
                        // The close the client started is answered (tungstenite queued
                        // the reply; flushing sends it), or the client sees 1006 and a
                        // driver such as @rocket.chat/sdk's reconnects after `disconnect()`.
                        Some(Ok(Message::Close(_))) => {
                            let _ = timeout(CLOSE_REPLY_TIMEOUT, ws.flush()).await;
                            return End::ClientGone;
                        }
                        None | Some(Err(_)) => return End::ClientGone,
                        // DDP is text: a binary frame is answered as Meteor answers a
                        // frame it cannot use, never silently dropped.
                        Some(Ok(Message::Binary(_))) => {
                            last_heard = Instant::now();
                            pinged_at = None;
                            if send(&mut ws, frame::error("Bad request", None).into()).await.is_err() {
                                return End::ClientGone;
                            }
                            continue;
                        }
                        Some(Ok(_)) => { last_heard = Instant::now(); pinged_at = None; continue; }
                    };
                    last_heard = Instant::now();
                    pinged_at = None;
                    if self.login_revoked() {
                        return close_logged_out(&mut ws).await;
                    }
                    self.handle(text.as_str(), &mut out).await;
                    if send_all(&mut ws, &mut out).await.is_err() {
                        return End::ClientGone;
                    }
                }
                ev = next_event(self.events.as_mut()), if wants_events => {
                    let Some(p) = ev else { return End::Shutdown };
                    // Changes were lost behind what is queued: close rather than leave
                    // a silent gap.
                    if let Some(why) = self.overflow() {
                        return close_slow(&mut ws, &why).await;
                    }
                    self.event_frames(&p, &mut out);
                    self.drain_events(&mut out);
                    // Checked again: nothing more is queued after an overflow, so a
                    // drain that emptied the queue must not leave the loop waiting.
                    if let Some(why) = self.overflow() {
                        return close_slow(&mut ws, &why).await;
                    }
                    let n = out.len() as u64;
                    match timeout(SEND_TIMEOUT, send_all(&mut ws, &mut out)).await {
                        Ok(Ok(())) => { self.app.metrics.frames_sent.inc_by(n); }
                        Ok(Err(_)) => return End::ClientGone,
                        Err(_) => {
                            let why = format!(
                                "slow consumer: a send took longer than {} s",
                                SEND_TIMEOUT.as_secs()
                            );
                            return close_slow(&mut ws, &why).await;
                        }
                    }
                }
                _ = Transport::heartbeat_due(heartbeat.as_mut()) => {
                    if ws.send_heartbeat().await.is_err() {
                        return End::ClientGone;
                    }
                    // What the bus does not carry (a new name or roles alone) reaches
                    // the own record here, within one heartbeat.
                    let mut frames = Vec::new();
                    self.pubs.refresh_own(&self.app.model.read(), &mut frames);
                    out.extend(frames.into_iter().map(Utf8Bytes::from));
                    if send_all(&mut ws, &mut out).await.is_err() {
                        return End::ClientGone;
                    }
                }
                _ = &mut timer => {
                    let now = Instant::now();
                    if now >= last_heard + stale_after || pinged_at.is_some() {
                        return End::Silent;
                    }
                    // A revoked login stops receiving events within one ping interval
                    // even if the client never sends anything.
                    if self.login_revoked() {
                        return close_logged_out(&mut ws).await;
                    }
                    pinged_at = Some(now);
                    if send(&mut ws, frame::ping(None).into()).await.is_err() {
                        return End::ClientGone;
                    }
                }
            }
        }
    }

    /// Is this connection logged in with a token that no longer authenticates?
    fn login_revoked(&self) -> bool {
        self.login.as_ref().is_some_and(|l| {
            self.app
                .authenticate_hashed(&l.user_id, &l.token_hashed)
                .is_none()
        })
    }

    /// Why this connection must close as a slow consumer, if its queue overflowed.
    fn overflow(&self) -> Option<String> {
        let l = self.events.as_ref().filter(|l| l.overflowed())?;
        Some(format!(
            "slow consumer: more than {} events queued",
            l.capacity()
        ))
    }

    /// Tells the fan-out index what this connection listens to now (after a method, a
    /// sub or an unsub): every status change, the notices, the users it watches and its
    /// own. A connection that listens to nothing leaves the index.
    fn sync_interest(&mut self) {
        let own = self.login.as_ref().map(|l| l.user_id.as_str());
        let mut want = Interest {
            all: self.subs.wants_every_status() || self.pubs.wants_all(),
            notices: self.subs.wants_notices() || self.pubs.wants_events(),
            users: self.subs.watched().collect(),
        };
        if let (Some(own), true) = (own, self.subs.wants_own()) {
            want.users.insert(own);
        }
        if let Some(own) = self.pubs.own() {
            want.users.insert(own);
        }
        if want.is_empty() {
            self.events = None;
            return;
        }
        let (app, events) = (&self.app, &mut self.events);
        events
            .get_or_insert_with(|| app.bus.listen(app.cfg.ws_queue_events))
            .set(&want);
    }

    /// Takes whatever else is already queued, so a burst goes out in one write.
    fn drain_events(&mut self, out: &mut Vec<Utf8Bytes>) {
        let Session {
            events,
            subs,
            pubs,
            app,
            login,
            ..
        } = self;
        let uid = login.as_ref().map_or("", |l| l.user_id.as_str());
        let Some(rx) = events.as_mut() else {
            return;
        };
        for _ in 0..MAX_BURST {
            match rx.try_recv() {
                Some(p) => event_frames(subs, pubs, app, uid, &p, out),
                None => break,
            }
        }
    }

    fn event_frames(&mut self, p: &Published, out: &mut Vec<Utf8Bytes>) {
        let uid = self.login.as_ref().map_or("", |l| l.user_id.as_str());
        event_frames(&self.subs, &mut self.pubs, &self.app, uid, p, out);
    }

    /// Answers one client frame, appending the replies to `out`.
    async fn handle(&mut self, text: &str, out: &mut Vec<Utf8Bytes>) {
        let parsed = match frame::parse(text, self.app.cfg.ws_max_frame_bytes) {
            Ok(f) => f,
            Err(FrameError::Unknown(v)) => {
                out.push(frame::error("Bad request", Some(&v)).into());
                return;
            }
            Err(FrameError::BadField(v)) => {
                out.push(frame::error(frame::bad_field_reason(&v), Some(&v)).into());
                return;
            }
            Err(FrameError::Malformed) | Err(FrameError::TooLarge) => {
                out.push(frame::error("Bad request", None).into());
                return;
            }
        };
        match parsed {
            ClientFrame::Connect { version, support } => {
                if version == "1" || (self.connected && support.iter().any(|v| v == "1")) {
                    self.connected = true;
                    out.push(frame::connected(&self.id).into());
                } else {
                    out.push(frame::failed("1").into());
                }
            }
            ClientFrame::Ping { id } => out.push(frame::pong(id.as_deref()).into()),
            ClientFrame::Pong { .. } => {}
            ClientFrame::Method { id, method, params } => {
                let before = self.login.as_ref().map(|l| l.user_id.clone());
                let mut cx = CallCtx {
                    app: &self.app,
                    session_id: &self.id,
                    ip: self.ip,
                    login: &mut self.login,
                    over_rest: false,
                };
                let result = methods::call(&mut cx, &method, &params).await;
                // Meteor's `users` record of a new login goes before the result.
                self.login_changed(before, out);
                out.push(
                    match result {
                        Ok(Some(v)) => frame::result_ok(&id, &v),
                        Ok(None) => frame::result_empty(&id),
                        Err(e) => frame::result_err(&id, &e),
                    }
                    .into(),
                );
                out.push(frame::updated(&id).into());
                if self.login.is_none() {
                    // Logged out: the streams are for logged-in users only.
                    self.subs.clear();
                }
                self.sync_interest();
            }
            ClientFrame::Sub { id, name, params } => {
                if self.login.is_none() {
                    let e = frame::MeteorError::new(
                        "not-allowed",
                        "You must be logged in to subscribe",
                    );
                    out.push(frame::nosub(&id, Some(&e)).into());
                    return;
                }
                if publications::handles(&name) || self.pubs.has(&id) {
                    self.publication(&id, &name, &params, out);
                    return;
                }
                let (app, login) = (&self.app, &self.login);
                let private = || may_see_private_settings(app, login.as_ref());
                let who = Subscriber {
                    uid: login.as_ref().map_or("", |l| l.user_id.as_str()),
                    may_see_private_settings: &private,
                };
                let reply = self
                    .subs
                    .sub(&id, &name, &params, SubLimits::of(&self.app.cfg), &who);
                match reply {
                    SubReply::Ready => out.push(frame::ready(&id).into()),
                    SubReply::NoSub(e) => out.push(frame::nosub(&id, e.as_ref()).into()),
                }
                self.sync_interest();
            }
            ClientFrame::Unsub { id } => {
                let mut frames = Vec::new();
                self.pubs.unsub(&id, &mut frames);
                out.extend(frames.into_iter().map(Utf8Bytes::from));
                self.subs.unsub(&id);
                self.sync_interest();
                out.push(frame::nosub(&id, None).into());
            }
        }
    }
}

impl Session {
    /// After a method: the `users` record of a new login, or the removal of every
    /// document at a logout.
    fn login_changed(&mut self, before: Option<String>, out: &mut Vec<Utf8Bytes>) {
        let now = self.login.as_ref().map(|l| l.user_id.as_str());
        if now == before.as_deref() {
            return;
        }
        let mut frames = Vec::new();
        match now {
            Some(uid) => self.pubs.login(&self.app.model.read(), uid, &mut frames),
            None => self.pubs.logout(&mut frames),
        }
        out.extend(frames.into_iter().map(Utf8Bytes::from));
    }

    /// A `sub` of `activeUsers` / `fullUserData`: the documents, then `ready`. A second
    /// sub with the id of a running one is ignored, as Meteor does.
    fn publication(
        &mut self,
        id: &str,
        name: &str,
        params: &[serde_json::Value],
        out: &mut Vec<Utf8Bytes>,
    ) {
        if self.pubs.has(id) {
            return;
        }
        let Some(uid) = self.login.as_ref().map(|l| l.user_id.clone()) else {
            return;
        };
        let max_subs = self.app.cfg.ws_max_subscriptions;
        let mut frames = Vec::new();
        let answer = {
            let model = self.app.model.read();
            match model.users.get(&uid).cloned() {
                Some(caller) => {
                    self.pubs
                        .sub(&model, &caller, (id, name, params), max_subs, &mut frames)
                }
                None => Ok(()),
            }
        };
        out.extend(frames.into_iter().map(Utf8Bytes::from));
        match answer {
            Ok(()) => out.push(frame::ready(id).into()),
            Err(e) => out.push(frame::nosub(id, Some(&e)).into()),
        }
        self.sync_interest();
    }
}

/// The frames one published change makes on a connection.
fn event_frames(
    subs: &Subscriptions,
    pubs: &mut Publications,
    app: &Ctx,
    uid: &str,
    p: &Published,
    out: &mut Vec<Utf8Bytes>,
) {
    // Presence privacy (`crate::privacy`): the true frames, the redacted ones, or none.
    let seen = crate::privacy::seen_by(p, uid, || {
        crate::privacy::privileged(&app.model.read(), uid)
    });
    if seen != crate::privacy::Seen::Nothing {
        subs.frames(p, uid, seen == crate::privacy::Seen::Offline, out);
    }
    // A status event, or a notice about a user's record (renamed, roles, deleted):
    // the `users` documents of that user are read again.
    if let (true, Some(about)) = (pubs.wants_events(), p.user_id()) {
        let mut frames = Vec::new();
        pubs.on_user(&app.model.read(), about, &mut frames);
        out.extend(frames.into_iter().map(Utf8Bytes::from));
    }
}

/// May the logged-in user see private settings (`private-settings-changed`)?
fn may_see_private_settings(app: &Ctx, login: Option<&Login>) -> bool {
    let m = app.model.read();
    login
        .and_then(|l| m.users.get(&l.user_id))
        .is_some_and(|u| {
            streams::PRIVATE_SETTINGS_PERMISSIONS
                .iter()
                .any(|p| m.has_permission(u, p))
        })
}

async fn close_logged_out(ws: &mut Transport) -> End {
    let close = CloseFrame {
        code: 1008,
        reason: "logged out by the server".into(),
    };
    let _ = ws.send(Message::Close(Some(close))).await;
    End::LoggedOut
}

/// Closes a slow consumer with a close frame that says why (1013, "try again later":
/// the client reconnects and resynchronises). The frame goes out unless the socket is
/// itself stuck.
async fn close_slow(ws: &mut Transport, why: &str) -> End {
    let close = CloseFrame {
        code: 1013,
        reason: why.into(),
    };
    let _ = timeout(CLOSE_REPLY_TIMEOUT, ws.send(Message::Close(Some(close)))).await;
    End::Slow
}

async fn next_event(rx: Option<&mut Listener<Published>>) -> Option<Arc<Published>> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn send(ws: &mut Transport, text: Utf8Bytes) -> Result<(), axum::Error> {
    ws.send(Message::Text(text)).await
}

/// Writes every queued frame with one flush.
async fn send_all(ws: &mut Transport, out: &mut Vec<Utf8Bytes>) -> Result<(), axum::Error> {
    if out.is_empty() {
        return Ok(());
    }
    for text in out.drain(..) {
        ws.feed(Message::Text(text)).await?;
    }
    ws.flush().await
}
