//! WAL checkpoints on a thread of their own, off the writer's path.
//!
//! SQLite's automatic checkpoint runs inside the COMMIT that crosses the threshold
//! (1,000 pages): that commit copies the WAL into the database file and syncs it, and
//! every caller in its batch waits for that on top of its own commit. Under a steady
//! stream of status changes that was one commit in a dozen, and it made the latency
//! tail. Here the writer's connection never checkpoints; this thread does a PASSIVE
//! checkpoint every `Policy::interval` on its own connection. PASSIVE never blocks the writer:
//! it copies what is committed and syncs the database file while commits go on. The
//! writer starts the WAL over at its next transaction once everything has been copied.
//!
//! Under load with no quiet moment that may not happen, so the WAL would grow; once it
//! holds `Policy::restart_frames` this thread asks for a RESTART checkpoint, which briefly
//! holds off the writer until the (by then small) rest is copied, and the WAL starts
//! over. So the WAL stays bounded and the database file is at most one interval behind.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use rusqlite::Connection;

/// When to checkpoint.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// How often committed pages are copied into the database file.
    pub interval: Duration,
    /// WAL frames (pages) after which a checkpoint may hold off the writer to start
    /// the WAL over.
    pub restart_frames: i64,
}

impl Default for Policy {
    /// Every 25 ms; the WAL starts over past 8,192 pages (32 MiB of 4 KiB pages).
    /// Measured with the setStatus benchmark (BENCHMARKS.md): 25 ms gave a lower p99
    /// than 100 or 500 ms (a RESTART then waits for at most 25 ms of commits to be
    /// copied), 10 ms no better; a smaller restart threshold only restarted more often.
    fn default() -> Policy {
        Policy {
            interval: Duration::from_millis(25),
            restart_frames: 8192,
        }
    }
}

pub struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the database `conn` is open on.
    pub fn start(conn: Connection, policy: Policy) -> std::io::Result<Checkpointer> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("statusd-checkpoint".into())
            .spawn(move || run(&conn, &flag, policy))?;
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: &Connection, stop: &(Mutex<bool>, Condvar), policy: Policy) {
    let mut failing = false;
    loop {
        {
            let mut stopped = stop.0.lock();
            if !*stopped {
                stop.1.wait_for(&mut stopped, policy.interval);
            }
            if *stopped {
                return;
            }
        }
        let result = checkpoint(conn, "PASSIVE").and_then(|(frames, copied)| {
            if frames >= policy.restart_frames {
                restart(conn, copied)?;
            }
            Ok(())
        });
        // One warning per failing stretch: a full disk would otherwise log 40 a second.
        match result {
            Err(e) if !failing => {
                tracing::warn!("WAL checkpoint failed (will retry): {e}");
                failing = true;
            }
            Err(_) => {}
            Ok(()) => failing = false,
        }
    }
}

/// The busy handler of the writer's and the checkpointer's connections: try again
/// after 100 µs, for up to 5 s. SQLite's own (`busy_timeout`) sleeps 1, 2, 5, 10 ms…
/// between tries, so a writer held off for 2 ms by a RESTART checkpoint would wait 8.
pub fn wait_briefly(tries: i32) -> bool {
    std::thread::sleep(Duration::from_micros(100));
    tries < 50_000
}

/// A PASSIVE pass that copied this few frames was short, so little came in during it.
const SHORT_PASS: i64 = 64;

/// Starts the WAL over, `copied` frames of it being in the database file already. A
/// RESTART holds the writer off while it copies what is not in the database file yet
/// and syncs it: after one PASSIVE pass that is whatever was committed during the pass
/// (up to ~20 ms of commits under load, which measured 2–20 ms of stall). So first a
/// few more PASSIVE passes, each copying what came in during the one before, until one
/// is short; the RESTART then has little left to copy.
fn restart(conn: &Connection, mut copied: i64) -> rusqlite::Result<()> {
    let started = std::time::Instant::now();
    for _ in 0..4 {
        let (_, now) = checkpoint(conn, "PASSIVE")?;
        let pass = now - copied;
        copied = now;
        if pass <= SHORT_PASS {
            break;
        }
    }
    let rest = started.elapsed();
    let (frames, _) = checkpoint(conn, "RESTART")?;
    tracing::debug!(
        frames,
        passes_ms = rest.as_secs_f64() * 1000.0,
        restart_ms = (started.elapsed() - rest).as_secs_f64() * 1000.0,
        "WAL started over"
    );
    Ok(())
}

/// Runs one checkpoint; returns the frames in the WAL and how many of them are in the
/// database file now (-1, -1 when it is not in WAL mode).
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Under a steady stream of commits with no pause, the WAL would only grow; the
    /// checkpointer keeps it near its restart threshold.
    #[test]
    fn the_wal_stays_bounded_under_steady_commits() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.db");
        let writer = Connection::open(&path).expect("open");
        writer
            .execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0;
                 CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB NOT NULL);",
            )
            .expect("schema");
        writer
            .busy_handler(Some(wait_briefly))
            .expect("busy handler");
        let other = Connection::open(&path).expect("open");
        other
            .busy_handler(Some(wait_briefly))
            .expect("busy handler");
        let policy = Policy {
            interval: Duration::from_millis(5),
            restart_frames: 200,
        };
        let checkpointer = Checkpointer::start(other, policy).expect("start");
        let wal = dir.path().join("t.db-wal");
        let mut largest = 0;
        // Each commit rewrites 8 pages of their own: 24,000 frames without checkpoints.
        // The pause between commits only keeps a starved checkpointer thread (a busy
        // CI machine) from making the bound below flaky.
        for i in 0..3000i64 {
            let tx = writer.unchecked_transaction().expect("begin");
            for j in 0..8 {
                tx.execute(
                    "INSERT OR REPLACE INTO t (k, v) VALUES (?1, zeroblob(3000))",
                    [(i % 25) * 8 + j],
                )
                .expect("write");
            }
            tx.commit().expect("commit");
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
            std::thread::sleep(Duration::from_micros(100));
        }
        drop(checkpointer);
        let frame = 4096 + 24;
        assert!(
            largest < 6_000 * frame,
            "the WAL reached {} frames",
            largest / frame
        );
        let rows: i64 = writer
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(rows, 200);
    }
}
