//! The core every process opens the same way, the server and the admin commands alike:
//! the store `DATABASE_URL` names, the model loaded from it, the writer that changes
//! both, the bus its events go out on and the metrics it keeps. What only a server has
//! (rate limits, realtime connections, cluster leadership, timers) is built around it
//! (`crate::app`); the CLI and the importer use the core alone.

use std::sync::Arc;

use anyhow::Context;
use parking_lot::RwLock;
use serde_json::Value as Json;

use super::model::Model;
use super::writer::{Replicate, Writer};
use crate::bus::Bus;
use crate::metrics::Metrics;
use crate::settings;
use crate::store::{Role, Store};

#[derive(Clone)]
pub struct Core {
    /// Everything, in memory: what every read is served from.
    pub model: Arc<RwLock<Model>>,
    /// The one path of every change (validate → commit → publish).
    pub writer: Writer,
    /// The durable store, for the few reads not served from memory (status history).
    pub store: Arc<dyn Store>,
    /// Where the writer publishes committed status changes.
    pub bus: Bus,
    pub metrics: Arc<Metrics>,
    /// This process's id among the processes sharing a store.
    pub instance_id: String,
}

/// An opened store and the model read from it, before the writer starts.
pub struct Loaded {
    pub store: Arc<dyn Store>,
    pub model: Model,
    pub instance_id: String,
}

impl Core {
    /// Opens the store `database_url` names and reads everything into a model.
    /// `before_load` runs on the open store first (the server takes the cluster lease
    /// there). Blocking: file or database I/O.
    pub fn load(
        database_url: &str,
        role: Role,
        before_load: impl FnOnce(&dyn Store),
    ) -> anyhow::Result<Loaded> {
        let instance_id = crate::auth::secrets::new_id();
        let store = crate::store::open(database_url, &instance_id, role).context("DATABASE_URL")?;
        before_load(store.as_ref());
        let snapshot = store.load().context("DATABASE_URL: loading the database")?;
        Ok(Loaded {
            store,
            model: Model::from_snapshot(snapshot),
            instance_id,
        })
    }
}

impl Loaded {
    /// Starts the writer over the loaded model. `replicate` takes every committed batch
    /// to the other instances (cluster mode).
    pub fn start(self, replicate: Option<Replicate>) -> Core {
        let model = Arc::new(RwLock::new(self.model));
        let metrics = Arc::new(Metrics::new());
        let bus = Bus::new(crate::bus::fanout::Counts {
            status_events: metrics.status_events.clone(),
            queued: metrics.fanout_queued.clone(),
            dropped: metrics.frames_dropped.clone(),
        });
        let writer = Writer::start(
            model.clone(),
            self.store.clone(),
            bus.clone(),
            metrics.clone(),
            replicate,
        );
        Core {
            model,
            writer,
            store: self.store,
            bus,
            metrics,
            instance_id: self.instance_id,
        }
    }
}

/// Typed reads of the workspace settings the model holds.
impl settings::Values for Model {
    fn stored(&self, id: &str) -> Option<&Json> {
        self.settings.get(id)
    }
}
