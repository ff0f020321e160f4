//! The single writer. Every change in the system (REST, DDP, connection events, timers)
//! is a job run here, one after another, so all of them see one consistent order.
//! Jobs that queue up while a commit is in progress are committed together in one
//! transaction: the disk is synced once per batch, not once per request, which is what
//! makes durable writes fast. Only after the commit succeeds is the in-memory model
//! updated, the events published and the callers answered.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLock;
use tokio::sync::{mpsc, oneshot};

use super::model::Model;
use super::notices;
use super::remote::{self, WireChange};
use super::tx::Tx;
use crate::bus::Bus;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::record::Change;
use crate::store::{CommitError, Store};

type Done = Box<dyn FnOnce(Result<()>) + Send>;
type LocalJob = Box<dyn FnOnce(&mut Tx) -> Done + Send>;

enum Job {
    /// A change made here: run, commit, publish, answer.
    Local(LocalJob),
    /// The cluster leader's work (expiry, reaping): committed alone and only while this
    /// instance still holds the leader lease (`ClusterStore::commit_as_leader`; a
    /// single embedded instance always leads).
    Leader(LocalJob),
    /// Changes another process committed (found by `crate::external`): apply and
    /// publish locally.
    Remote(Vec<Change>),
    /// Changes another instance committed (cluster mode), as they came over NATS, and
    /// where to report the status parts that could not be applied.
    Peer(Vec<WireChange>, remote::Resync),
    /// Reload the model from the store after a gap in the cluster feed. The store is
    /// read here, in the writer's order, so no change committed or applied meanwhile
    /// is overwritten by an older snapshot. Answers whether the store could be read.
    Resync(Arc<dyn Store>, oneshot::Sender<bool>),
}

/// The most jobs committed in one transaction.
const MAX_BATCH: usize = 2048;

#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    /// Woken after a commit that added webhook deliveries to the outbox.
    outbox: Arc<tokio::sync::Notify>,
}

/// Where committed local changes go to reach the other instances (cluster mode), in
/// their wire form (without secrets).
pub type Replicate = mpsc::UnboundedSender<Vec<WireChange>>;

impl Writer {
    pub fn start(
        model: Arc<RwLock<Model>>,
        store: Arc<dyn Store>,
        bus: Bus,
        metrics: Arc<Metrics>,
        replicate: Option<Replicate>,
    ) -> Writer {
        let (jobs, rx) = mpsc::channel::<Job>(16 * 1024);
        let outbox = Arc::new(tokio::sync::Notify::new());
        let outbox_signal = outbox.clone();
        std::thread::Builder::new()
            .name("statusd-writer".into())
            .spawn(move || {
                let ctx = Ctx {
                    model: &model,
                    store: store.as_ref(),
                    bus: &bus,
                    metrics: &metrics,
                    replicate: replicate.as_ref(),
                    outbox: &outbox_signal,
                };
                run(rx, &ctx)
            })
            .expect("spawn the writer thread");
        Writer { jobs, outbox }
    }

    /// Notified after each commit that added webhook deliveries (the delivery worker
    /// waits on it, so a delivery goes out as soon as it is committed).
    pub fn outbox_signal(&self) -> Arc<tokio::sync::Notify> {
        self.outbox.clone()
    }

    /// Runs `f` on the writer and waits until its changes are committed (or refused).
    /// If `f` fails, everything it wrote is rolled back and its error returned.
    pub async fn run<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Tx) -> Result<R> + Send + 'static,
    {
        self.submit(f, Job::Local).await
    }

    /// Like `run`, for work only the cluster leader may do: committed in a transaction
    /// of its own, refused (503) when this instance no longer holds the leader lease.
    pub async fn run_as_leader<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Tx) -> Result<R> + Send + 'static,
    {
        self.submit(f, Job::Leader).await
    }

    async fn submit<R, F>(&self, f: F, kind: fn(LocalJob) -> Job) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Tx) -> Result<R> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<R>>();
        let job: LocalJob = Box::new(move |tx: &mut Tx| -> Done {
            let mark = tx.mark();
            match catch_unwind(AssertUnwindSafe(|| f(tx))) {
                Ok(Ok(r)) => Box::new(move |committed| {
                    let _ = reply.send(committed.map(|_| r));
                }),
                Ok(Err(e)) => {
                    tx.rollback(mark);
                    Box::new(move |_| {
                        let _ = reply.send(Err(e));
                    })
                }
                Err(_) => {
                    tx.rollback(mark);
                    tracing::error!("a write job panicked; its changes were discarded");
                    Box::new(move |_| {
                        let _ = reply.send(Err(Error::Unavailable("internal error".into())));
                    })
                }
            }
        });
        self.jobs
            .send(kind(job))
            .await
            .map_err(|_| Error::Unavailable("writer stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Unavailable("writer stopped".into()))?
    }

    /// Applies changes another process committed.
    pub async fn apply_remote(&self, changes: Vec<Change>) {
        let _ = self.jobs.send(Job::Remote(changes)).await;
    }

    /// Applies changes another instance committed (cluster mode).
    pub async fn apply_peer(&self, batch: Vec<WireChange>, resync: remote::Resync) {
        let _ = self.jobs.send(Job::Peer(batch, resync)).await;
    }

    /// Replaces the model with one loaded from `store` now, after everything queued
    /// before; false when the store could not be read (or the writer stopped).
    pub async fn resync(&self, store: Arc<dyn Store>) -> bool {
        let (done, answer) = oneshot::channel();
        if self.jobs.send(Job::Resync(store, done)).await.is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
    }
}

struct Ctx<'a> {
    model: &'a RwLock<Model>,
    store: &'a dyn Store,
    bus: &'a Bus,
    metrics: &'a Metrics,
    replicate: Option<&'a Replicate>,
    outbox: &'a tokio::sync::Notify,
}

fn run(mut rx: mpsc::Receiver<Job>, ctx: &Ctx) {
    let mut batch: Vec<LocalJob> = Vec::with_capacity(MAX_BATCH);
    let mut pending: Option<Job> = None;
    loop {
        let first = match pending.take() {
            Some(job) => job,
            None => match rx.blocking_recv() {
                Some(job) => job,
                None => return,
            },
        };
        match first {
            Job::Local(job) => batch.push(job),
            Job::Leader(job) => {
                commit_batch(ctx, &mut vec![job], true);
                continue;
            }
            other => {
                apply_other(ctx, other);
                continue;
            }
        }
        // Everything already queued joins this batch, up to a remote change or a
        // leader's job, which must be applied in order after it.
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Job::Local(job)) => batch.push(job),
                Ok(other) => {
                    pending = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        commit_batch(ctx, &mut batch, false);
    }
}

fn apply_other(ctx: &Ctx, job: Job) {
    let now = chrono::Utc::now();
    let private_before = privacy_enabled(&ctx.model.read());
    let (events, notices) = match job {
        Job::Remote(changes) => remote::apply(&mut ctx.model.write(), changes, now),
        Job::Peer(batch, resync) => {
            // Secrets do not travel: read the credentials the batch names from the
            // store, here in the writer's order, so nothing committed here since is
            // undone by an older read. Before taking the model lock.
            let users = remote::credential_users(&batch);
            let credentials = if users.is_empty() {
                Ok(Default::default())
            } else {
                match ctx.store.cluster() {
                    Some(c) => c.credentials(&users),
                    None => Err(anyhow::anyhow!("no shared store to read credentials from")),
                }
            };
            remote::apply_peer(&mut ctx.model.write(), batch, credentials, now, &resync)
        }
        // Read before taking the model lock, so readers are not held up meanwhile.
        Job::Resync(store, done) => match store.load() {
            Ok(snapshot) => {
                let fresh = Model::from_snapshot(snapshot);
                let events = remote::resync(&mut ctx.model.write(), fresh, now);
                let _ = done.send(true);
                events
            }
            Err(e) => {
                tracing::warn!("reloading from the store failed: {e:#}");
                let _ = done.send(false);
                Default::default()
            }
        },
        Job::Local(_) | Job::Leader(_) => Default::default(),
    };
    // Only presence goes quiet: the other notices (the setting itself among them, which
    // the mobile app follows) still go out.
    if !broadcast_disabled(ctx.model) {
        publish_status(ctx, events, private_before, now);
    }
    for notice in notices {
        ctx.bus.notify(notice);
    }
}

fn commit_batch(ctx: &Ctx, batch: &mut Vec<LocalJob>, as_leader: bool) {
    let started = Instant::now();
    let mut tx = Tx::new(ctx.model);
    let dones: Vec<Done> = batch.drain(..).map(|job| job(&mut tx)).collect();
    // The webhook deliveries these changes cause, committed with them (the outbox).
    if !tx.changes.is_empty() {
        let deliveries =
            super::outbox::derive(&tx.changes, &tx.claim_reasons, &ctx.model.read(), tx.now);
        tx.changes.extend(deliveries);
    }
    let delivered = tx
        .changes
        .iter()
        .any(|c| matches!(c, Change::AddDelivery(_)));
    let result = if tx.changes.is_empty() {
        Ok(())
    } else if let (true, Some(cluster)) = (as_leader, ctx.store.cluster()) {
        cluster.commit_as_leader(&tx.changes)
    } else {
        ctx.store.commit(&tx.changes)
    };
    match result {
        Ok(()) => {
            if let (Some(rep), false) = (ctx.replicate, tx.changes.is_empty()) {
                // Against the model before these changes: which credentials changed.
                let wire = remote::to_wire(&tx.changes, &ctx.model.read());
                if !wire.is_empty() {
                    let _ = rep.send(wire);
                }
            }
            // Against the model before these changes, like the wire form.
            let notices = notices::derive(&tx.changes, &ctx.model.read(), tx.now);
            let private_before = privacy_enabled(&ctx.model.read());
            {
                let mut m = ctx.model.write();
                for change in tx.changes.drain(..) {
                    m.apply(change);
                }
            }
            if !broadcast_disabled(ctx.model) {
                let events = std::mem::take(&mut tx.events);
                publish_status(ctx, events, private_before, tx.now);
            }
            for notice in notices {
                ctx.bus.notify(notice);
            }
            ctx.metrics.observe_commit(dones.len(), started.elapsed());
            if delivered {
                ctx.outbox.notify_one();
            }
            for done in dones {
                done(Ok(()));
            }
        }
        Err(CommitError::NotLeader) => {
            tracing::warn!("leader work not committed: this instance no longer leads");
            for done in dones {
                done(Err(Error::Unavailable("not the cluster leader".into())));
            }
        }
        Err(CommitError::Failed(e)) => {
            tracing::error!("commit failed, {} changes refused: {e:#}", dones.len());
            for done in dones {
                done(Err(Error::Unavailable("the store could not commit".into())));
            }
        }
    }
}

/// Is presence privacy (`status::privacy`) on?
fn privacy_enabled(m: &Model) -> bool {
    use crate::settings::Values;
    m.value(&crate::settings::STATUS_VISIBILITY)
}

/// Publishes status events (the model already holding their changes), each with whom
/// its user hides it from, so each session picks the true or the redacted frames
/// (`crate::privacy`). When the changes turned presence privacy on or off
/// (`private_before` is what it was), everyone who hides from anyone is announced
/// again: the sessions they hide from then see them offline, or again as they are.
fn publish_status(
    ctx: &Ctx,
    mut events: Vec<crate::bus::StatusEvent>,
    private_before: bool,
    now: chrono::DateTime<chrono::Utc>,
) {
    use crate::status::privacy::{hides_from_anyone, Hiding};
    let m = ctx.model.read();
    let private = privacy_enabled(&m);
    if private != private_before {
        for e in events.iter_mut() {
            e.privacy_changed = true;
        }
        let again: Vec<_> = m
            .users
            .values()
            .filter(|u| hides_from_anyone(u) && !events.iter().any(|e| e.uid == u.id))
            .map(|u| crate::bus::StatusEvent {
                privacy_changed: true,
                ..crate::bus::StatusEvent::of(u, now)
            })
            .collect();
        events.extend(again);
    }
    for event in events {
        let hiding = if private {
            m.users
                .get(&event.uid)
                .and_then(|u| Hiding::of(u))
                .map(Arc::new)
        } else {
            None
        };
        ctx.bus.publish_hiding(event, hiding);
    }
}

/// Rocket.Chat stops broadcasting presence while `Presence_broadcast_disabled` is on (its
/// presence service's `broadcastEnabled`, ee/packages/presence/src/Presence.ts): the
/// status changes are committed and applied as ever, but no realtime subscriber hears of
/// them until `presence.enableBroadcast` (or the setting) turns it back on.
fn broadcast_disabled(model: &RwLock<Model>) -> bool {
    use crate::settings::Values;
    model
        .read()
        .value(&crate::settings::PRESENCE_BROADCAST_DISABLED)
}
