//! Crash durability (issue 7): under sustained `users.setStatus` load from many
//! clients the server is killed with SIGKILL at a random moment, restarted on the same
//! data, and every client's acknowledged change is compared with what is stored: the
//! stored change must be the last acknowledged one or the one in flight at the kill,
//! never an older one, and never half of one (status and message are written together).
//!
//! `STATUSD_CRASH_ROUNDS` sets the number of kill/restart rounds (default 3, the CI
//! size; RELIABILITY.md records a 20-round run). Works on either store
//! (`STATUSD_TEST_DATABASE_URL`).

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// Concurrent clients, each with its own keep-alive connection and its own user.
const CLIENTS: usize = 24;

/// What one client sent and what the server acknowledged, by sequence number.
#[derive(Default)]
struct Progress {
    sent: AtomicU64,
    acked: AtomicU64,
}

/// The status a client's change number `seq` sets: status and message both depend on
/// it, so a half-written change shows.
fn change(client: usize, seq: u64) -> Value {
    let status = ["away", "busy", "online"][(seq % 3) as usize];
    json!({"status": status, "message": format!("c{client} #{seq}")})
}

/// Sends changes until `stop`, or until the server goes away.
async fn hammer(url: String, s: Session, client: usize, p: Arc<Progress>, stop: Arc<AtomicBool>) {
    let http = reqwest::Client::new();
    let mut seq = p.acked.load(Ordering::SeqCst);
    while !stop.load(Ordering::SeqCst) {
        seq += 1;
        p.sent.store(seq, Ordering::SeqCst);
        let resp = http
            .post(&url)
            .header("X-User-Id", &s.user_id)
            .header("X-Auth-Token", &s.token)
            .json(&change(client, seq))
            .send()
            .await;
        let Ok(resp) = resp else {
            return; // killed mid-request: this change is in flight
        };
        let status = resp.status();
        let Ok(body) = resp.text().await else {
            return;
        };
        assert_eq!(status, 200, "client {client} change #{seq}: {body}");
        p.acked.store(seq, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn no_acknowledged_change_is_lost_when_killed_under_load() {
    let rounds: u64 = std::env::var("STATUSD_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    // 24 logins from one address would wait out the per-IP login rate limit.
    let mut srv =
        Server::start_with(&[("OVERWRITE_SETTING_API_Enable_Rate_Limiter", "false")]).await;
    let admin = srv.admin().await;
    // Admins: neither the rate limiter nor the message-change limit applies to them,
    // so every request is a real, durable write.
    let mut users = Vec::new();
    for i in 0..CLIENTS {
        users.push(
            srv.create_user(&format!("crash{i}"), "crash-pass-1", &["admin"])
                .await,
        );
    }
    let progress: Vec<Arc<Progress>> = (0..CLIENTS).map(|_| Default::default()).collect();
    let mut total_acked = 0;
    for round in 1..=rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let url = srv.url("users.setStatus");
        let before: u64 = progress
            .iter()
            .map(|p| p.acked.load(Ordering::SeqCst))
            .sum();
        let tasks: Vec<_> = users
            .iter()
            .enumerate()
            .map(|(i, s)| {
                tokio::spawn(hammer(
                    url.clone(),
                    s.clone(),
                    i,
                    progress[i].clone(),
                    stop.clone(),
                ))
            })
            .collect();
        // A different moment in every round (300–1,300 ms of load).
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(300 + u64::from(nanos % 1000))).await;
        srv.kill9();
        stop.store(true, Ordering::SeqCst);
        for t in tasks {
            t.await.expect("a client task panicked");
        }
        let acked: u64 = progress
            .iter()
            .map(|p| p.acked.load(Ordering::SeqCst))
            .sum();
        assert!(
            acked > before,
            "round {round}: no change was acknowledged before the kill"
        );
        total_acked += acked - before;

        srv.start_again().await;
        let mut failures = Vec::new();
        for (i, s) in users.iter().enumerate() {
            let (acked, sent) = (
                progress[i].acked.load(Ordering::SeqCst),
                progress[i].sent.load(Ordering::SeqCst),
            );
            let r = srv
                .get(&format!("users.info?userId={}", s.user_id), Some(&admin))
                .await;
            assert_status(&r, 200);
            let text = r.2["user"]["statusText"].as_str().unwrap_or("").to_string();
            let stored: Option<u64> = text
                .strip_prefix(&format!("c{i} #"))
                .and_then(|n| n.parse().ok());
            match stored {
                Some(seq) if seq >= acked && seq <= sent => {
                    // The stored message went with its own status, not another change's.
                    let want = change(i, seq)["status"].clone();
                    if r.2["user"]["status"] != want {
                        failures.push(format!(
                            "client {i}: message #{seq} stored with status {} (want {want})",
                            r.2["user"]["status"]
                        ));
                    }
                    // Continue numbering after what was stored.
                    progress[i].acked.store(seq, Ordering::SeqCst);
                    progress[i].sent.store(seq, Ordering::SeqCst);
                }
                None if acked == 0 => {}
                _ => failures.push(format!(
                    "client {i}: acknowledged #{acked}, sent up to #{sent}, stored {text:?}"
                )),
            }
        }
        assert!(
            failures.is_empty(),
            "round {round}:\n{}",
            failures.join("\n")
        );
        eprintln!(
            "crash round {round}/{rounds}: {} changes acknowledged, all stored",
            acked - before
        );
    }
    eprintln!("crash: {rounds} rounds, {total_acked} acknowledged changes, 0 lost");
}
