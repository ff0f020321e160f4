//! Status claims (Rocket.Chat 8.6's presence engine, `presenceEngine.ts`): who may set
//! what a user chose, and what comes back when a claim ends. Pure functions over a
//! user's claim fields, no I/O, no clock reads; `change.rs` applies the outcome.
//!
//! Sources rank `internal` (1) > `manual` (2) > `external` (3); a state without a
//! source ranks below all. A claim of equal or higher rank replaces the active one and,
//! unless it is manual, stashes it in the single `previousState` slot (the same
//! external source re-applies in place; internal claims stack). A manual claim never
//! stashes and empties the slot, except that a temporary manual claim keeps the last
//! permanent choice there (CONTRACT §4: an expiry restores it). A lower claim waits in
//! the slot when it is free (or holds an expired claim) or when it outranks what the
//! slot holds; otherwise it is refused. While the user chose `offline` only manual
//! claims apply. Ending a claim restores the slot (unless it expired), else resets to
//! `online` with no text.

use chrono::{DateTime, Utc};

use crate::model::{PreviousState, Status};

/// Where a claim comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimSource {
    /// The server's own uses (ranked above what the user chose).
    Internal,
    /// The user's own choice (users.setStatus, DDP setUserStatus, the CLI).
    Manual,
    /// Integrations: calendars, other systems.
    External,
}

impl ClaimSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimSource::Internal => "internal",
            ClaimSource::Manual => "manual",
            ClaimSource::External => "external",
        }
    }

    pub fn parse(s: &str) -> Option<ClaimSource> {
        match s {
            "internal" => Some(ClaimSource::Internal),
            "manual" => Some(ClaimSource::Manual),
            "external" => Some(ClaimSource::External),
            _ => None,
        }
    }

    /// 1 is the highest.
    pub fn priority(self) -> u8 {
        match self {
            ClaimSource::Internal => 1,
            ClaimSource::Manual => 2,
            ClaimSource::External => 3,
        }
    }
}

/// The rank of a stored source (None or unknown: below every claim).
fn rank(source: Option<&str>) -> u8 {
    source
        .and_then(ClaimSource::parse)
        .map_or(4, |s| s.priority())
}

/// The rank of what the slot holds. A slot without a source holds a manual choice kept
/// by a temporary manual claim, so it ranks as manual.
fn slot_rank(slot: &PreviousState) -> u8 {
    slot.status_source
        .as_deref()
        .map_or(ClaimSource::Manual.priority(), |s| rank(Some(s)))
}

/// A claim to set: Rocket.Chat's `{statusDefault, statusSource, statusText?,
/// statusExpiresAt?, statusId?}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    pub status_default: Status,
    pub source: ClaimSource,
    /// Normalised; None keeps the current text.
    pub text: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub id: Option<String>,
}

/// The claim fields of a user, as stored.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ClaimState {
    pub status_default: Status,
    pub status_text: String,
    pub source: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub id: Option<String>,
    pub previous: Option<PreviousState>,
}

/// An operation on a user's claims.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Set a claim active (or let it wait, or refuse it).
    Set(Claim),
    /// End the active claim, or the one with this id (active or waiting). The expiry
    /// timer ends without an id.
    End(Option<String>),
    /// Back to `online` with no text, nothing waiting.
    Clear,
}

/// What an operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The claim is active now.
    Active,
    /// The claim waits in the slot for the active one to end.
    Waiting,
    /// Refused: nothing changes.
    Refused,
    /// The waiting claim with that id was dropped; the active one stays.
    EndedWaiting,
    /// The active claim ended and the one waiting came back.
    Restored,
    /// The active claim ended (or was cleared) and nothing was waiting: `online`.
    Reset,
    /// No claim has that id: nothing changes.
    NotFound,
}

impl Outcome {
    /// Whether the state changed.
    pub fn changed(self) -> bool {
        !matches!(self, Outcome::Refused | Outcome::NotFound)
    }

    /// Whether what the user chose (status, text, source) changed, not only the slot.
    pub fn chosen_changed(self) -> bool {
        matches!(self, Outcome::Active | Outcome::Restored | Outcome::Reset)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Active => "active",
            Outcome::Waiting => "waiting",
            Outcome::Refused => "refused",
            Outcome::EndedWaiting => "endedWaiting",
            Outcome::Restored => "restored",
            Outcome::Reset => "reset",
            Outcome::NotFound => "notFound",
        }
    }
}

fn expired(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    at.is_some_and(|t| t <= now)
}

fn reset() -> ClaimState {
    ClaimState {
        status_default: Status::Online,
        ..ClaimState::default()
    }
}

/// The active state, as the slot keeps it.
fn stash(cur: &ClaimState, source: Option<String>) -> PreviousState {
    PreviousState {
        status_default: cur.status_default,
        status_text: cur.status_text.clone(),
        status_source: source,
        status_expires_at: cur.expires_at,
        status_id: cur.id.clone(),
    }
}

/// Applies `op` to `cur` at `now`: the new state and what happened. A refused or
/// unmatched operation returns `cur` unchanged.
pub fn resolve(cur: &ClaimState, op: &Op, now: DateTime<Utc>) -> (ClaimState, Outcome) {
    match op {
        Op::Clear => (reset(), Outcome::Reset),
        Op::End(id) => end(cur, id.as_deref(), now),
        Op::Set(claim) => set(cur, claim, now),
    }
}

fn end(cur: &ClaimState, id: Option<&str>, now: DateTime<Utc>) -> (ClaimState, Outcome) {
    if let Some(id) = id {
        let active = cur.id.as_deref() == Some(id);
        let waiting = cur
            .previous
            .as_ref()
            .is_some_and(|p| p.status_id.as_deref() == Some(id));
        if waiting && !active {
            let mut next = cur.clone();
            next.previous = None;
            return (next, Outcome::EndedWaiting);
        }
        if !active {
            return (cur.clone(), Outcome::NotFound);
        }
    }
    match &cur.previous {
        Some(p) if !expired(p.status_expires_at, now) => (
            ClaimState {
                status_default: p.status_default,
                status_text: p.status_text.clone(),
                source: p.status_source.clone(),
                expires_at: p.status_expires_at,
                id: p.status_id.clone(),
                previous: None,
            },
            Outcome::Restored,
        ),
        _ => (reset(), Outcome::Reset),
    }
}

fn set(cur: &ClaimState, claim: &Claim, now: DateTime<Utc>) -> (ClaimState, Outcome) {
    let manual = claim.source == ClaimSource::Manual;
    // Invisible: only the user changes it.
    if cur.status_default == Status::Offline && !manual {
        return (cur.clone(), Outcome::Refused);
    }
    let new_rank = claim.source.priority();
    let cur_rank = rank(cur.source.as_deref());
    if new_rank <= cur_rank {
        let previous = if manual {
            match claim.expires_at {
                None => None,
                // A temporary manual claim over another temporary manual one keeps
                // the slot: the last permanent choice comes back.
                Some(_) if cur.source.as_deref() == Some("manual") && cur.expires_at.is_some() => {
                    cur.previous.clone()
                }
                // A manual choice is kept without its source (restored as chosen, not
                // as a claim); a claim keeps its own.
                Some(_) => Some(stash(
                    cur,
                    cur.source
                        .clone()
                        .filter(|s| s != ClaimSource::Manual.as_str()),
                )),
            }
        } else {
            let same_source = cur.source.as_deref() == Some(claim.source.as_str());
            let stacks = claim.source == ClaimSource::Internal;
            if cur.source.is_some() && (!same_source || stacks) {
                Some(stash(cur, cur.source.clone()))
            } else {
                cur.previous.clone()
            }
        };
        let next = ClaimState {
            status_default: claim.status_default,
            status_text: claim
                .text
                .clone()
                .unwrap_or_else(|| cur.status_text.clone()),
            source: Some(claim.source.as_str().to_string()),
            expires_at: claim.expires_at,
            id: claim.id.clone(),
            previous,
        };
        return (next, Outcome::Active);
    }
    // Lower than the active claim: wait in the slot, if it may.
    let waiting = PreviousState {
        status_default: claim.status_default,
        status_text: claim.text.clone().unwrap_or_default(),
        status_source: Some(claim.source.as_str().to_string()),
        status_expires_at: claim.expires_at,
        status_id: claim.id.clone(),
    };
    let may_wait = match &cur.previous {
        None => true,
        Some(p) if expired(p.status_expires_at, now) => true,
        Some(p) => new_rank <= slot_rank(p),
    };
    if !may_wait {
        return (cur.clone(), Outcome::Refused);
    }
    let mut next = cur.clone();
    next.previous = Some(waiting);
    (next, Outcome::Waiting)
}

/// Why a claim the operation `op` removes went away, as webhooks tell it
/// (`claim.ended`'s `reason`): an end `ended`, a clear `cleared`, a set `replaced` (the
/// claim it displaced or the waiting one it dropped). A claim whose own `expiresAt` had
/// passed is `expired` whatever removed it (`state::outbox` decides that, knowing the
/// claim).
pub fn ending_reason(op: &Op) -> &'static str {
    match op {
        Op::End(_) => "ended",
        Op::Clear => "cleared",
        Op::Set(_) => "replaced",
    }
}

/// What a user shows with no live connection after a claim operation (Rocket.Chat's
/// `disconnectedStatus`): a cleared state its chosen status; a set claim offline for a
/// person and the chosen status for a bot; an ended claim offline. statusd's manual
/// changes and expiries keep the contract's rule instead (the choice shows at once).
pub fn displayed_disconnected(op: &Op, service_user: bool, chosen: Status) -> Status {
    match op {
        Op::Clear => chosen,
        Op::Set(_) if service_user => chosen,
        Op::Set(_) | Op::End(_) => Status::Offline,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn now() -> DateTime<Utc> {
        t(0)
    }

    fn claim(src: ClaimSource, st: Status, text: &str, id: Option<&str>) -> Claim {
        Claim {
            status_default: st,
            source: src,
            text: Some(text.into()),
            expires_at: None,
            id: id.map(Into::into),
        }
    }

    fn state(st: Status, text: &str, src: Option<&str>, id: Option<&str>) -> ClaimState {
        ClaimState {
            status_default: st,
            status_text: text.into(),
            source: src.map(Into::into),
            expires_at: None,
            id: id.map(Into::into),
            previous: None,
        }
    }

    fn slot(st: Status, text: &str, src: Option<&str>, id: Option<&str>) -> PreviousState {
        PreviousState {
            status_default: st,
            status_text: text.into(),
            status_source: src.map(Into::into),
            status_expires_at: None,
            status_id: id.map(Into::into),
        }
    }

    use ClaimSource::{External as E, Internal as I, Manual as M};

    /// Rows: (active source, slot source or none, new claim source) → outcome, and
    /// which source is active and which waits afterwards.
    #[test]
    fn the_truth_table_of_setting_a_claim() {
        type Row = (
            Option<&'static str>,
            Option<&'static str>,
            ClaimSource,
            Outcome,
            Option<&'static str>,
            Option<&'static str>,
        );
        let rows: &[Row] = &[
            // nothing chosen yet: every claim applies, nothing is stashed
            (None, None, M, Outcome::Active, Some("manual"), None),
            (None, None, E, Outcome::Active, Some("external"), None),
            (None, None, I, Outcome::Active, Some("internal"), None),
            // manual active
            (
                Some("manual"),
                None,
                M,
                Outcome::Active,
                Some("manual"),
                None,
            ),
            (
                Some("manual"),
                None,
                E,
                Outcome::Waiting,
                Some("manual"),
                Some("external"),
            ),
            (
                Some("manual"),
                None,
                I,
                Outcome::Active,
                Some("internal"),
                Some("manual"),
            ),
            (
                Some("manual"),
                Some("external"),
                E,
                Outcome::Waiting,
                Some("manual"),
                Some("external"),
            ),
            (
                Some("manual"),
                Some("internal"),
                E,
                Outcome::Refused,
                Some("manual"),
                Some("internal"),
            ),
            // manual clears the slot
            (
                Some("manual"),
                Some("external"),
                M,
                Outcome::Active,
                Some("manual"),
                None,
            ),
            // external active
            (
                Some("external"),
                None,
                M,
                Outcome::Active,
                Some("manual"),
                None,
            ),
            (
                Some("external"),
                Some("manual"),
                M,
                Outcome::Active,
                Some("manual"),
                None,
            ),
            (
                Some("external"),
                None,
                E,
                Outcome::Active,
                Some("external"),
                None,
            ),
            (
                Some("external"),
                Some("manual"),
                E,
                Outcome::Active,
                Some("external"),
                Some("manual"),
            ),
            (
                Some("external"),
                None,
                I,
                Outcome::Active,
                Some("internal"),
                Some("external"),
            ),
            // internal active
            (
                Some("internal"),
                None,
                M,
                Outcome::Waiting,
                Some("internal"),
                Some("manual"),
            ),
            (
                Some("internal"),
                None,
                E,
                Outcome::Waiting,
                Some("internal"),
                Some("external"),
            ),
            (
                Some("internal"),
                Some("external"),
                M,
                Outcome::Waiting,
                Some("internal"),
                Some("manual"),
            ),
            (
                Some("internal"),
                Some("manual"),
                E,
                Outcome::Refused,
                Some("internal"),
                Some("manual"),
            ),
            (
                Some("internal"),
                Some("manual"),
                I,
                Outcome::Active,
                Some("internal"),
                Some("internal"),
            ),
        ];
        for &(active, waiting, new, want, after_active, after_waiting) in rows {
            let mut cur = state(Busy, "cur", active, Some("cur-id"));
            cur.previous = waiting.map(|w| slot(Away, "slot", Some(w), Some("slot-id")));
            let c = claim(new, Away, "new", Some("new-id"));
            let (next, got) = resolve(&cur, &Op::Set(c), now());
            let case = format!("{active:?}/{waiting:?} + {new:?}");
            assert_eq!(got, want, "{case}");
            assert_eq!(next.source.as_deref(), after_active, "{case}: active");
            assert_eq!(
                next.previous
                    .as_ref()
                    .and_then(|p| p.status_source.as_deref()),
                after_waiting,
                "{case}: waiting"
            );
            if got == Outcome::Refused {
                assert_eq!(next, cur, "{case}: a refusal changes nothing");
            }
        }
    }

    #[test]
    fn a_stashed_claim_is_the_whole_active_one() {
        let mut cur = state(Busy, "meeting", Some("external"), Some("cal-1"));
        cur.expires_at = Some(t(600));
        let (next, o) = resolve(
            &cur,
            &Op::Set(claim(I, Away, "call", Some("call-1"))),
            now(),
        );
        assert_eq!(o, Outcome::Active);
        assert_eq!(
            next.previous,
            Some(PreviousState {
                status_default: Busy,
                status_text: "meeting".into(),
                status_source: Some("external".into()),
                status_expires_at: Some(t(600)),
                status_id: Some("cal-1".into()),
            })
        );
        assert_eq!(next.id.as_deref(), Some("call-1"));
        assert_eq!(next.expires_at, None);
    }

    #[test]
    fn the_same_external_source_reapplies_in_place_and_internals_stack() {
        let mut cur = state(Busy, "a", Some("external"), Some("a"));
        cur.previous = Some(slot(Away, "base", Some("manual"), None));
        let (next, _) = resolve(&cur, &Op::Set(claim(E, Busy, "b", Some("b"))), now());
        assert_eq!(next.previous, cur.previous, "the slot stays");
        assert_eq!(next.id.as_deref(), Some("b"));
        let cur = state(Busy, "voice", Some("internal"), Some("v"));
        let (next, _) = resolve(&cur, &Op::Set(claim(I, Busy, "video", Some("w"))), now());
        assert_eq!(next.previous.unwrap().status_id.as_deref(), Some("v"));
    }

    #[test]
    fn a_claim_without_text_keeps_the_text() {
        let cur = state(Online, "hello", Some("manual"), None);
        let mut c = claim(I, Busy, "", None);
        c.text = None;
        let (next, _) = resolve(&cur, &Op::Set(c), now());
        assert_eq!(next.status_text, "hello");
    }

    #[test]
    fn invisible_takes_only_manual_claims() {
        let cur = state(Offline, "", Some("manual"), None);
        for src in [E, I] {
            let (next, o) = resolve(&cur, &Op::Set(claim(src, Busy, "x", None)), now());
            assert_eq!((o, &next), (Outcome::Refused, &cur), "{src:?}");
        }
        let (next, o) = resolve(&cur, &Op::Set(claim(M, Away, "x", None)), now());
        assert_eq!((o, next.status_default), (Outcome::Active, Away));
    }

    #[test]
    fn a_lower_claim_takes_an_expired_slot() {
        let mut cur = state(Busy, "", Some("internal"), None);
        let mut old = slot(Away, "old", Some("manual"), None);
        old.status_expires_at = Some(t(-1));
        cur.previous = Some(old);
        let (next, o) = resolve(&cur, &Op::Set(claim(E, Busy, "cal", Some("c"))), now());
        assert_eq!(o, Outcome::Waiting);
        assert_eq!(next.previous.unwrap().status_id.as_deref(), Some("c"));
    }

    #[test]
    fn a_temporary_manual_claim_keeps_the_permanent_choice() {
        let cur = state(Away, "base", Some("manual"), None);
        let mut temp = claim(M, Busy, "meeting", None);
        temp.expires_at = Some(t(60));
        let (next, o) = resolve(&cur, &Op::Set(temp.clone()), now());
        assert_eq!(o, Outcome::Active);
        assert_eq!(next.previous, Some(slot(Away, "base", None, None)));
        // chained: the first permanent choice stays
        let (next2, _) = resolve(&next, &Op::Set(claim(M, Away, "x", None)), now());
        assert_eq!(
            next2.previous, None,
            "a permanent manual claim empties the slot"
        );
        let mut temp2 = temp.clone();
        temp2.status_default = Online;
        let (next3, _) = resolve(&next, &Op::Set(temp2), now());
        assert_eq!(next3.previous, Some(slot(Away, "base", None, None)));
        // the kept choice ranks as manual: an external claim may not displace it
        let (_, o) = resolve(&next, &Op::Set(claim(E, Busy, "cal", Some("c"))), now());
        assert_eq!(o, Outcome::Refused);
        // a temporary manual claim over an external one keeps the claim whole
        let ext = state(Busy, "cal", Some("external"), Some("c"));
        let (next, _) = resolve(&ext, &Op::Set(temp), now());
        assert_eq!(
            next.previous,
            Some(slot(Busy, "cal", Some("external"), Some("c")))
        );
    }

    #[test]
    fn ending_restores_the_slot_or_resets() {
        let mut cur = state(Busy, "cal", Some("external"), Some("c"));
        cur.previous = Some(slot(Away, "base", Some("manual"), None));
        let (next, o) = resolve(&cur, &Op::End(Some("c".into())), now());
        assert_eq!(o, Outcome::Restored);
        assert_eq!(next, state(Away, "base", Some("manual"), None));
        // without an id (the expiry timer) the active claim ends
        let (next, o) = resolve(&cur, &Op::End(None), now());
        assert_eq!((o, next.status_default), (Outcome::Restored, Away));
        // nothing waiting: online, no text, no source
        let lone = state(Busy, "cal", Some("external"), Some("c"));
        let (next, o) = resolve(&lone, &Op::End(Some("c".into())), now());
        assert_eq!((o, next), (Outcome::Reset, state(Online, "", None, None)));
        // an expired slot is not restored
        let mut stale = cur.clone();
        stale.previous.as_mut().unwrap().status_expires_at = Some(t(0));
        let (_, o) = resolve(&stale, &Op::End(Some("c".into())), now());
        assert_eq!(o, Outcome::Reset);
    }

    #[test]
    fn ending_by_id_finds_the_waiting_claim_or_nothing() {
        let mut cur = state(Busy, "me", Some("manual"), None);
        cur.previous = Some(slot(Busy, "cal", Some("external"), Some("c")));
        let (next, o) = resolve(&cur, &Op::End(Some("c".into())), now());
        assert_eq!(o, Outcome::EndedWaiting);
        assert_eq!(next, state(Busy, "me", Some("manual"), None));
        let (next, o) = resolve(&cur, &Op::End(Some("other".into())), now());
        assert_eq!((o, next), (Outcome::NotFound, cur.clone()));
    }

    #[test]
    fn clearing_resets_everything() {
        let mut cur = state(Busy, "cal", Some("internal"), Some("c"));
        cur.previous = Some(slot(Away, "base", Some("manual"), None));
        let (next, o) = resolve(&cur, &Op::Clear, now());
        assert_eq!((o, next), (Outcome::Reset, state(Online, "", None, None)));
    }

    #[test]
    fn disconnected_display() {
        let set = Op::Set(claim(E, Busy, "", None));
        assert_eq!(displayed_disconnected(&set, false, Busy), Offline);
        assert_eq!(displayed_disconnected(&set, true, Busy), Busy);
        assert_eq!(displayed_disconnected(&Op::End(None), true, Busy), Offline);
        assert_eq!(displayed_disconnected(&Op::Clear, false, Online), Online);
    }

    #[test]
    fn sources_rank_and_parse() {
        assert!(I.priority() < M.priority() && M.priority() < E.priority());
        for s in [I, M, E] {
            assert_eq!(ClaimSource::parse(s.as_str()), Some(s));
        }
        assert_eq!(ClaimSource::parse("calendar"), None);
    }
}
