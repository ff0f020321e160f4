//! Periodic upkeep: forget old rate-limit windows and login failures, and prune the
//! status history past `Status_History_Retention_Days`.

use std::time::{Duration, Instant};

use crate::app::Ctx;
use crate::settings::{self, Values};

const EVERY: Duration = Duration::from_secs(60);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

pub async fn run(app: Ctx) {
    let mut last_prune: Option<Instant> = None;
    loop {
        let now = Instant::now();
        app.limiter.sweep(Duration::from_secs(3600), now);
        app.login_guard.sweep(Duration::from_secs(3600), now);
        if last_prune.is_none_or(|t| now.duration_since(t) >= PRUNE_EVERY) {
            last_prune = Some(now);
            if let Err(e) = prune_history(&app).await {
                tracing::warn!("pruning the status history failed: {e:#}");
            }
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// Deletes history entries older than the retention setting (0 keeps everything).
pub async fn prune_history(app: &Ctx) -> anyhow::Result<u64> {
    let days = app.model.read().value(&settings::HISTORY_RETENTION_DAYS);
    if days <= 0 {
        return Ok(0);
    }
    // Checked: a count past what dates hold prunes nothing rather than panicking.
    let Some(before) =
        chrono::TimeDelta::try_days(days).and_then(|d| chrono::Utc::now().checked_sub_signed(d))
    else {
        return Ok(0);
    };
    let store = app.store.clone();
    let n = tokio::task::spawn_blocking(move || store.prune_history(before)).await??;
    if n > 0 {
        tracing::info!("pruned {n} status history entries older than {days} days");
    }
    Ok(n)
}
