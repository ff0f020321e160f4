//! Replayed cluster messages. A sealed message stays valid forever, so someone who
//! can subscribe could publish an old one again (an old setting value, a connection
//! long closed). Each instance numbers its messages (`seq`, from 1 per process, and a
//! process's id is new at every start) and stamps them with its clock; a receiver
//! drops a message whose number it has seen from that sender, or whose stamp is
//! further than `MAX_SKEW` from its own clock (so the numbers of senders it no longer
//! remembers cannot be reused either). Instances' clocks must agree within that.
//!
//! The numbers also show what was lost: a sender numbers every message it means to
//! publish, so a number more than one past the last one seen from that sender means a
//! message in between never arrived (a publish that failed, a message NATS dropped for a
//! slow subscriber). The receiver then reloads its model from the store (`Fresh::Gap`).

use std::collections::HashMap;

/// How far a message's stamp may be from the receiver's clock, in milliseconds.
pub const MAX_SKEW_MS: i64 = 5 * 60 * 1000;

/// Why a sealed message was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// Stamped too far from now: old (or a clock far off).
    Stale,
    /// A number already seen from its sender.
    Repeated,
}

impl Replay {
    /// The `reason` label of the rejection counter.
    pub fn as_str(self) -> &'static str {
        match self {
            Replay::Stale => "stale",
            Replay::Repeated => "replayed",
        }
    }
}

/// What an accepted message's number says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fresh {
    /// The next of its sender's, or the first seen from it.
    InOrder,
    /// Some of its sender's messages before it never arrived.
    Gap,
}

/// The last number (and its stamp) seen from each sender.
#[derive(Default)]
pub struct Guard {
    last: HashMap<String, (u64, i64)>,
}

impl Guard {
    /// Accepts message `seq` of `origin` stamped `sent_at` (ms) at `now` (ms), saying
    /// whether messages of that sender went missing before it, or says why not.
    pub fn check(
        &mut self,
        origin: &str,
        seq: u64,
        sent_at: i64,
        now: i64,
    ) -> Result<Fresh, Replay> {
        if now.abs_diff(sent_at) > MAX_SKEW_MS.unsigned_abs() {
            return Err(Replay::Stale);
        }
        let fresh = match self.last.get(origin) {
            Some((last, _)) if seq <= *last => return Err(Replay::Repeated),
            Some((last, _)) if seq > last.saturating_add(1) => Fresh::Gap,
            _ => Fresh::InOrder,
        };
        // A sender silent for longer than the skew can only send stale messages now.
        if self.last.len() > 16 {
            self.last
                .retain(|_, (_, at)| now.abs_diff(*at) <= MAX_SKEW_MS.unsigned_abs());
        }
        self.last.insert(origin.to_string(), (seq, sent_at));
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn numbers_must_rise_per_sender() {
        let mut g = Guard::default();
        assert_eq!(g.check("a", 1, NOW, NOW), Ok(Fresh::InOrder));
        assert_eq!(g.check("a", 2, NOW, NOW), Ok(Fresh::InOrder));
        assert_eq!(g.check("a", 2, NOW, NOW), Err(Replay::Repeated));
        assert_eq!(g.check("a", 1, NOW, NOW), Err(Replay::Repeated));
        assert_eq!(g.check("b", 9, NOW, NOW), Ok(Fresh::InOrder), "first seen");
        assert_eq!(
            g.check("a", 7, NOW, NOW),
            Ok(Fresh::Gap),
            "3 to 6 went missing"
        );
        assert_eq!(g.check("a", 8, NOW, NOW), Ok(Fresh::InOrder));
        assert_eq!(g.check("a", 5, NOW, NOW), Err(Replay::Repeated), "late");
    }

    #[test]
    fn old_or_far_future_stamps_are_stale() {
        let mut g = Guard::default();
        assert_eq!(
            g.check("a", 1, NOW - MAX_SKEW_MS - 1, NOW),
            Err(Replay::Stale)
        );
        assert_eq!(
            g.check("a", 1, NOW + MAX_SKEW_MS + 1, NOW),
            Err(Replay::Stale)
        );
        assert_eq!(g.check("a", 1, NOW - MAX_SKEW_MS, NOW), Ok(Fresh::InOrder));
        assert_eq!(g.check("a", 1, i64::MIN, NOW), Err(Replay::Stale));
        assert_eq!(g.check("a", 2, i64::MAX, NOW), Err(Replay::Stale));
    }

    #[test]
    fn forgotten_senders_stay_rejected_by_their_stamps() {
        let mut g = Guard::default();
        for i in 0..40 {
            assert_eq!(g.check(&format!("s{i}"), 1, NOW, NOW), Ok(Fresh::InOrder));
        }
        let later = NOW + MAX_SKEW_MS + 1;
        assert_eq!(g.check("new", 1, later, later), Ok(Fresh::InOrder));
        assert!(g.last.len() <= 2, "silent senders pruned: {}", g.last.len());
        assert_eq!(g.check("s0", 1, NOW, later), Err(Replay::Stale));
    }
}
