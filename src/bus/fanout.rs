//! Who hears of a published change: the realtime connections, indexed by what they
//! listen to, so a change wakes only the connections it is for.
//!
//! Before this index every listening connection held a receiver of one tokio broadcast
//! channel: each change woke every one of them, and each filtered it itself
//! (`Subscriptions::frames`). With 100 000 connections each watching 50 users through
//! `stream-user-presence` that is 100 000 wake-ups per change for a handful of frames
//! (issue 20: 58 µs of server CPU per delivered frame at 10 000 connections, frames
//! lost past 60 000). Now each connection registers a [`Listener`]: a bounded queue of
//! its own, and its interest:
//!
//! - `all`: every status change (`stream-notify-logged` `user-status`, and Meteor's
//!   `activeUsers` / `fullUserData` publications). This is the one fan-out that costs
//!   connections × changes by nature; it is one queue push per connection of one shared
//!   `Arc` whose frames are encoded once (`StatusFrames`), and its load is what
//!   `PRESENCE_BROADCAST_BUDGET` bounds (`crate::broadcast_budget`).
//! - the users it watches (`stream-user-presence`) and its own user (`<uid>/userData`,
//!   the own `users` record): an index `uid → listeners`, so a change of user U is
//!   pushed to U's watchers only.
//! - `notices`: the rarer notices (settings, custom statuses, renames…), pushed to every
//!   listener that holds a subscription to one; it picks what it wants.
//!
//! A change is pushed to a listener at most once even when several interests match
//! (an `all` listener is skipped in the per-user index), so a connection that both
//! subscribes to `user-status` and watches the user gets one event and builds each of
//! its frames once. Everything is published from the writer thread, so each queue gets
//! the changes in commit order.
//!
//! A full queue is not waited for: the listener is marked overflowed, the change is
//! counted as dropped, and nothing more is pushed to it; its session sees the mark at
//! its next wake-up and closes the connection with a close frame that says why
//! (`realtime::session`), so the client reconnects and resynchronises instead of
//! silently missing changes.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc::{self, error::TrySendError};

/// Where a published message goes: a status change of a user, or a notice.
pub enum Route<'a> {
    Status(&'a str),
    Notice,
}

/// What the fan-out carries (`bus::Published`) says where it goes.
pub trait Routed {
    fn destination(&self) -> Route<'_>;
}

/// What one connection listens to (its session computes it from its subscriptions).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Interest<'a> {
    /// Every status change.
    pub all: bool,
    /// The notices.
    pub notices: bool,
    /// The users whose status changes it wants (watched, and its own).
    pub users: HashSet<&'a str>,
}

impl Interest<'_> {
    pub fn is_empty(&self) -> bool {
        !self.all && !self.notices && self.users.is_empty()
    }
}

struct Slot<T> {
    tx: mpsc::Sender<Arc<T>>,
    overflowed: Arc<AtomicBool>,
    all: bool,
}

struct Index<T> {
    slots: Vec<Option<Slot<T>>>,
    free: Vec<u32>,
    all: HashSet<u32>,
    notices: HashSet<u32>,
    by_user: HashMap<Arc<str>, HashSet<u32>>,
}

impl<T> Default for Index<T> {
    fn default() -> Self {
        Index {
            slots: Vec::new(),
            free: Vec::new(),
            all: HashSet::new(),
            notices: HashSet::new(),
            by_user: HashMap::new(),
        }
    }
}

impl<T> Index<T> {
    fn slot(&self, id: u32) -> Option<&Slot<T>> {
        self.slots.get(id as usize).and_then(Option::as_ref)
    }
}

/// What the fan-out counts (the metrics' counters, shared; read by the broadcast
/// budget).
#[derive(Default, Clone)]
pub struct Counts {
    /// Status changes published.
    pub status_events: Counter,
    /// Events queued to connections (one per connection and change).
    pub queued: Counter,
    /// Events not queued because a connection's queue was full.
    pub dropped: Counter,
}

/// The index of listeners. One per process, inside the `Bus`.
pub struct Fanout<T> {
    index: RwLock<Index<T>>,
    pub counts: Counts,
}

impl<T> Default for Fanout<T> {
    fn default() -> Self {
        Fanout::new(Counts::default())
    }
}

/// One connection's registration: its queue and its interest. Dropping it removes it
/// from the index.
pub struct Listener<T> {
    fanout: Arc<Fanout<T>>,
    id: u32,
    rx: mpsc::Receiver<Arc<T>>,
    overflowed: Arc<AtomicBool>,
    capacity: usize,
    all: bool,
    notices: bool,
    users: HashSet<Arc<str>>,
}

impl<T> Fanout<T> {
    /// A fan-out that counts into `counts`.
    pub fn new(counts: Counts) -> Fanout<T> {
        Fanout {
            index: RwLock::default(),
            counts,
        }
    }
}

impl<T: Routed> Fanout<T> {
    /// A new listener with room for `capacity` queued changes, interested in nothing yet.
    pub fn listen(self: &Arc<Fanout<T>>, capacity: usize) -> Listener<T> {
        let capacity = capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let overflowed = Arc::new(AtomicBool::new(false));
        let slot = Slot {
            tx,
            overflowed: overflowed.clone(),
            all: false,
        };
        let mut ix = self.index.write();
        let id = match ix.free.pop() {
            Some(id) => {
                ix.slots[id as usize] = Some(slot);
                id
            }
            None => {
                ix.slots.push(Some(slot));
                u32::try_from(ix.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        Listener {
            fanout: self.clone(),
            id,
            rx,
            overflowed,
            capacity,
            all: false,
            notices: false,
            users: HashSet::new(),
        }
    }

    /// Queues a published change for every listener it is for.
    pub fn publish(&self, p: Arc<T>) {
        let ix = self.index.read();
        let mut queued = 0u64;
        let mut dropped = 0u64;
        let mut push = |slot: &Slot<T>| {
            if slot.overflowed.load(Ordering::Relaxed) {
                dropped += 1;
                return;
            }
            match slot.tx.try_send(p.clone()) {
                Ok(()) => queued += 1,
                Err(TrySendError::Full(_)) => {
                    slot.overflowed.store(true, Ordering::Relaxed);
                    dropped += 1;
                }
                // The session is ending; its Drop takes the slot out.
                Err(TrySendError::Closed(_)) => {}
            }
        };
        match p.destination() {
            Route::Status(uid) => {
                self.counts.status_events.inc();
                for id in &ix.all {
                    if let Some(slot) = ix.slot(*id) {
                        push(slot);
                    }
                }
                if let Some(watchers) = ix.by_user.get(uid) {
                    for id in watchers {
                        match ix.slot(*id) {
                            // Already pushed above: one event per connection.
                            Some(slot) if !slot.all => push(slot),
                            _ => {}
                        }
                    }
                }
            }
            Route::Notice => {
                for id in &ix.notices {
                    if let Some(slot) = ix.slot(*id) {
                        push(slot);
                    }
                }
            }
        }
        self.counts.queued.inc_by(queued);
        if dropped > 0 {
            self.counts.dropped.inc_by(dropped);
        }
    }

    /// Does any listener here want status changes of `uid` (its watchers, or one that
    /// wants every change)?
    pub fn wants(&self, uid: &str) -> bool {
        let ix = self.index.read();
        !ix.all.is_empty() || ix.by_user.get(uid).is_some_and(|w| !w.is_empty())
    }

    /// Listeners that want every status change (the `user-status` fan-out).
    pub fn listening_to_all(&self) -> usize {
        self.index.read().all.len()
    }
}

impl<T> Listener<T> {
    /// The next queued change; None only if the fan-out is gone.
    pub async fn recv(&mut self) -> Option<Arc<T>> {
        self.rx.recv().await
    }

    /// A change already queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Arc<T>> {
        self.rx.try_recv().ok()
    }

    /// Did the queue overflow (so changes were lost and the connection must close)?
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }

    /// The bound of the queue.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Makes the index hold `want` for this listener (only the differences are
    /// written).
    pub fn set(&mut self, want: &Interest) {
        let gone: Vec<Arc<str>> = self
            .users
            .iter()
            .filter(|u| !want.users.contains(&***u))
            .cloned()
            .collect();
        let new: Vec<&str> = want
            .users
            .iter()
            .copied()
            .filter(|u| !self.users.contains(*u))
            .collect();
        if gone.is_empty() && new.is_empty() && want.all == self.all && want.notices == self.notices
        {
            return;
        }
        let mut ix = self.fanout.index.write();
        let id = self.id;
        for u in gone {
            if let Some(w) = ix.by_user.get_mut(&*u) {
                w.remove(&id);
                if w.is_empty() {
                    ix.by_user.remove(&*u);
                }
            }
            self.users.remove(&u);
        }
        for u in new {
            let key: Arc<str> = match ix.by_user.get_key_value(u) {
                Some((k, _)) => k.clone(),
                None => Arc::from(u),
            };
            ix.by_user.entry(key.clone()).or_default().insert(id);
            self.users.insert(key);
        }
        if want.all != self.all {
            if want.all {
                ix.all.insert(id);
            } else {
                ix.all.remove(&id);
            }
            if let Some(Some(slot)) = ix.slots.get_mut(id as usize) {
                slot.all = want.all;
            }
            self.all = want.all;
        }
        if want.notices != self.notices {
            if want.notices {
                ix.notices.insert(id);
            } else {
                ix.notices.remove(&id);
            }
            self.notices = want.notices;
        }
    }
}

impl<T> Drop for Listener<T> {
    fn drop(&mut self) {
        let mut ix = self.fanout.index.write();
        let id = self.id;
        for u in &self.users {
            if let Some(w) = ix.by_user.get_mut(&**u) {
                w.remove(&id);
                if w.is_empty() {
                    ix.by_user.remove(&**u);
                }
            }
        }
        ix.all.remove(&id);
        ix.notices.remove(&id);
        if let Some(slot) = ix.slots.get_mut(id as usize) {
            *slot = None;
            ix.free.push(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A status change of the user it names.
    struct Change(String);

    impl Routed for Change {
        fn destination(&self) -> Route<'_> {
            Route::Status(&self.0)
        }
    }

    struct Bus(Arc<Fanout<Change>>);

    impl Bus {
        fn default() -> Bus {
            Bus(Arc::default())
        }
        fn listen(&self, capacity: usize) -> Listener<Change> {
            self.0.listen(capacity)
        }
        fn publish(&self, uid: &str) {
            self.0.publish(Arc::new(Change(uid.into())));
        }
        fn fanout(&self) -> &Fanout<Change> {
            &self.0
        }
    }

    fn event(uid: &str) -> &str {
        uid
    }

    fn interest<'a>(all: bool, users: &[&'a str]) -> Interest<'a> {
        Interest {
            all,
            notices: false,
            users: users.iter().copied().collect(),
        }
    }

    fn queued(l: &mut Listener<Change>) -> Vec<String> {
        std::iter::from_fn(|| l.try_recv())
            .map(|p| p.0.clone())
            .collect()
    }

    #[test]
    fn a_change_reaches_its_watchers_once_and_nobody_else() {
        let bus = Bus::default();
        let mut watcher = bus.listen(8);
        watcher.set(&interest(false, &["a", "b"]));
        let mut other = bus.listen(8);
        other.set(&interest(false, &["c"]));
        // Watches "a" and wants everything: one event per change, not two.
        let mut both = bus.listen(8);
        both.set(&interest(true, &["a"]));
        for uid in ["a", "c", "z"] {
            bus.publish(event(uid));
        }
        assert_eq!(queued(&mut watcher), ["a"]);
        assert_eq!(queued(&mut other), ["c"]);
        assert_eq!(queued(&mut both), ["a", "c", "z"]);
        assert!(bus.fanout().wants("z"), "an `all` listener wants everyone");
        drop(both);
        assert!(!bus.fanout().wants("z"));
        assert!(bus.fanout().wants("b"));
        // Unwatching takes the listener out of the index.
        watcher.set(&interest(false, &["b"]));
        bus.publish(event("a"));
        assert!(queued(&mut watcher).is_empty());
        drop(watcher);
        assert!(!bus.fanout().wants("b"));
        assert!(!bus.fanout().index.read().by_user.contains_key("a"));
    }

    #[test]
    fn a_full_queue_marks_the_listener_and_drops_the_rest() {
        let bus = Bus::default();
        let mut slow = bus.listen(2);
        slow.set(&interest(false, &["a"]));
        for _ in 0..5 {
            bus.publish(event("a"));
        }
        assert!(slow.overflowed());
        assert_eq!(queued(&mut slow).len(), 2);
        bus.publish(event("a"));
        assert!(
            queued(&mut slow).is_empty(),
            "nothing more after the overflow"
        );
        assert_eq!(bus.fanout().counts.dropped.get(), 4);
        // Slots are reused.
        drop(slow);
        let l = bus.listen(2);
        assert_eq!(l.id, 0);
    }
}
