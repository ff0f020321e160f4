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
use super::tx::Tx;
use crate::bus::Bus;
use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;
use crate::store::Store;

type Done = Box<dyn FnOnce(Result<(), ApiError>) + Send>;
type Job = Box<dyn FnOnce(&mut Tx) -> Done + Send>;

/// The most jobs committed in one transaction.
const MAX_BATCH: usize = 2048;

#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    pub fn start(
        model: Arc<RwLock<Model>>,
        store: Arc<dyn Store>,
        bus: Bus,
        metrics: Arc<Metrics>,
    ) -> Writer {
        let (jobs, rx) = mpsc::channel::<Job>(16 * 1024);
        std::thread::Builder::new()
            .name("statusd-writer".into())
            .spawn(move || run(rx, &model, store.as_ref(), &bus, &metrics))
            .expect("spawn the writer thread");
        Writer { jobs }
    }

    /// Runs `f` on the writer and waits until its changes are committed (or refused).
    /// If `f` fails, everything it wrote is rolled back and its error returned.
    pub async fn run<R, F>(&self, f: F) -> ApiResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Tx) -> ApiResult<R> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<ApiResult<R>>();
        let job: Job = Box::new(move |tx: &mut Tx| -> Done {
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
                        let _ = reply.send(Err(ApiError::Unavailable("internal error".into())));
                    })
                }
            }
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| ApiError::Unavailable("writer stopped".into()))?;
        answer
            .await
            .map_err(|_| ApiError::Unavailable("writer stopped".into()))?
    }
}

fn run(
    mut rx: mpsc::Receiver<Job>,
    model: &RwLock<Model>,
    store: &dyn Store,
    bus: &Bus,
    metrics: &Metrics,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let mut tx = Tx::new(model);
        let dones: Vec<Done> = batch.drain(..).map(|job| job(&mut tx)).collect();
        let result = if tx.changes.is_empty() {
            Ok(())
        } else {
            store.commit(&tx.changes)
        };
        match result {
            Ok(()) => {
                {
                    let mut m = model.write();
                    for change in tx.changes.drain(..) {
                        m.apply(change);
                    }
                }
                for event in tx.events.drain(..) {
                    bus.publish(event);
                }
                metrics.observe_commit(dones.len(), started.elapsed());
                for done in dones {
                    done(Ok(()));
                }
            }
            Err(e) => {
                tracing::error!("commit failed, {} changes refused: {e:#}", dones.len());
                for done in dones {
                    done(Err(ApiError::Unavailable(
                        "the store could not commit".into(),
                    )));
                }
            }
        }
    }
}
