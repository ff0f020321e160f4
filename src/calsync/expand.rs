//! From iCalendar text to the busy instances of a time window: pure functions, no I/O.
//!
//! Parsing is the `ical` crate's (line unfolding, parameters, components); recurrence
//! is the `rrule` crate's (RRULE with RDATE and EXDATE, evaluated in the event's own
//! time zone, so "every day at 10:00 Europe/Berlin" stays at 10:00 across a DST
//! change). What is statusd's own is the choice of what counts:
//!
//! - Times: `…Z` is UTC; `TZID=` names a zone: an IANA name (`Europe/Berlin`), one
//!   ending in an IANA name (`/mozilla.org/…/Europe/Berlin`), or a VTIMEZONE of the
//!   same file whose `X-LIC-LOCATION` is one. Anything else, floating times and dates
//!   are read in the calendar's `X-WR-TIMEZONE` when it names a zone, else UTC (a
//!   server has no "local" time of the user). A local time a DST gap skips is taken
//!   an hour later, an ambiguous one the first time.
//! - Instances: each occurrence of a master event (DTSTART, RRULE, RDATE, EXDATE), less
//!   those a RECURRENCE-ID override replaces, plus the overrides themselves; cancelled
//!   ones (`STATUS:CANCELLED`) are dropped. The end is DTEND, or DTSTART + DURATION, or
//!   one day for an all-day event; an event without any length is dropped (it makes
//!   nobody busy), one longer than a week is cut to a week (calendar events' limit).
//! - Free (`TRANSP:TRANSPARENT`) and all-day (`VALUE=DATE`) events are left out
//!   unless the calendar asks for them (`includeFree`, `includeAllDay`).
//! - Only instances overlapping the window count, earliest first, at most `cap`.

use std::collections::HashMap;
use std::io::BufReader;
use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use ical::parser::ical::component::{IcalCalendar, IcalEvent};
use ical::property::Property;

/// The longest instance kept (calendar events' own limit).
pub const LONGEST: Duration = Duration::days(7);
/// The most occurrences one recurring event may yield in a window.
const MAX_OCCURRENCES: u16 = 1000;

/// What of a calendar counts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    pub include_free: bool,
    pub include_all_day: bool,
}

/// One busy instance of an event.
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    pub uid: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub summary: String,
    pub description: String,
    pub url: Option<String>,
}

/// A time as the file gives it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum When {
    Date(NaiveDate),
    Floating(NaiveDateTime),
    Utc(NaiveDateTime),
    Zoned(NaiveDateTime, Tz),
}

/// One VEVENT, read.
struct Event {
    uid: String,
    start: When,
    end: Option<When>,
    duration: Option<Duration>,
    rrules: Vec<String>,
    rdates: Vec<When>,
    exdates: Vec<When>,
    recurrence_id: Option<When>,
    free: bool,
    cancelled: bool,
    summary: String,
    description: String,
    url: Option<String>,
}

fn prop<'a>(e: &'a IcalEvent, name: &str) -> Option<&'a Property> {
    e.properties
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
}

fn text(e: &IcalEvent, name: &str) -> String {
    prop(e, name)
        .and_then(|p| p.value.as_deref())
        .map(unescape)
        .unwrap_or_default()
}

/// RFC 5545 TEXT escapes.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

fn param<'a>(p: &'a Property, name: &str) -> Option<&'a str> {
    p.params
        .as_ref()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first())
        .map(String::as_str)
}

/// The zones a file names: TZID → zone, through the IANA database.
struct Zones {
    by_tzid: HashMap<String, Tz>,
    default: Tz,
}

impl Zones {
    fn of(cal: &IcalCalendar) -> Zones {
        let mut by_tzid = HashMap::new();
        for z in &cal.timezones {
            let get = |n: &str| {
                z.properties
                    .iter()
                    .find(|p| p.name.eq_ignore_ascii_case(n))
                    .and_then(|p| p.value.clone())
            };
            if let (Some(id), Some(loc)) = (get("TZID"), get("X-LIC-LOCATION")) {
                if let Some(tz) = iana(&loc) {
                    by_tzid.insert(id, tz);
                }
            }
        }
        let default = cal
            .properties
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case("X-WR-TIMEZONE"))
            .and_then(|p| p.value.as_deref())
            .and_then(iana)
            .unwrap_or(Tz::UTC);
        Zones { by_tzid, default }
    }

    fn named(&self, tzid: &str) -> Option<Tz> {
        iana(tzid).or_else(|| self.by_tzid.get(tzid).copied())
    }
}

/// An IANA zone name, or a TZID ending in one (`/mozilla.org/20050126_1/Europe/Berlin`).
fn iana(name: &str) -> Option<Tz> {
    let name = name.trim().trim_matches('"');
    if let Ok(tz) = Tz::from_str(name) {
        return Some(tz);
    }
    let parts: Vec<&str> = name.split('/').filter(|s| !s.is_empty()).collect();
    (1..parts.len()).find_map(|i| Tz::from_str(&parts[i..].join("/")).ok())
}

fn parse_naive(v: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(v, "%Y%m%dT%H%M%S").ok()
}

/// One DATE or DATE-TIME value with the property's parameters.
fn when(v: &str, p: &Property, zones: &Zones) -> Option<When> {
    let v = v.trim();
    if param(p, "VALUE").is_some_and(|t| t.eq_ignore_ascii_case("DATE")) || v.len() == 8 {
        return NaiveDate::parse_from_str(v, "%Y%m%d").ok().map(When::Date);
    }
    if let Some(utc) = v.strip_suffix('Z').or_else(|| v.strip_suffix('z')) {
        return parse_naive(utc).map(When::Utc);
    }
    let naive = parse_naive(v)?;
    Some(match param(p, "TZID").and_then(|id| zones.named(id)) {
        Some(tz) => When::Zoned(naive, tz),
        None => When::Floating(naive),
    })
}

fn whens(p: &Property, zones: &Zones) -> Vec<When> {
    if param(p, "VALUE").is_some_and(|t| t.eq_ignore_ascii_case("PERIOD")) {
        return Vec::new();
    }
    p.value
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter_map(|v| when(v, p, zones))
        .collect()
}

/// A local time in `tz`: a skipped one (DST gap) an hour later, an ambiguous one the
/// earlier.
fn local(tz: Tz, t: NaiveDateTime) -> DateTime<Tz> {
    tz.from_local_datetime(&t)
        .earliest()
        .or_else(|| tz.from_local_datetime(&(t + Duration::hours(1))).earliest())
        .unwrap_or_else(|| tz.from_utc_datetime(&t))
}

impl When {
    fn is_date(self) -> bool {
        matches!(self, When::Date(_))
    }

    /// The zone it is read in.
    fn zone(self, default: Tz) -> Tz {
        match self {
            When::Zoned(_, tz) => tz,
            When::Utc(_) => Tz::UTC,
            When::Date(_) | When::Floating(_) => default,
        }
    }

    fn at(self, default: Tz) -> DateTime<Tz> {
        match self {
            When::Date(d) => local(default, d.and_hms_opt(0, 0, 0).unwrap_or_default()),
            When::Floating(t) => local(default, t),
            When::Utc(t) => Tz::UTC.from_utc_datetime(&t),
            When::Zoned(t, tz) => local(tz, t),
        }
    }

    fn utc(self, default: Tz) -> DateTime<Utc> {
        self.at(default).with_timezone(&Utc)
    }
}

/// An RFC 5545 DURATION (`PT1H30M`, `P1D`, `P2W`); negative ones are refused.
fn duration(v: &str) -> Option<Duration> {
    let v = v.trim().strip_prefix('+').unwrap_or(v.trim());
    let v = v.strip_prefix('P')?;
    let (mut total, mut n, mut in_time) = (Duration::zero(), String::new(), false);
    for c in v.chars() {
        match c {
            '0'..='9' => n.push(c),
            'T' => in_time = true,
            'W' | 'D' | 'H' | 'M' | 'S' => {
                let k: i64 = n.parse().ok()?;
                n.clear();
                total += match (c, in_time) {
                    ('W', _) => Duration::weeks(k),
                    ('D', _) => Duration::days(k),
                    ('H', true) => Duration::hours(k),
                    ('M', true) => Duration::minutes(k),
                    ('S', true) => Duration::seconds(k),
                    _ => return None,
                };
            }
            _ => return None,
        }
    }
    n.is_empty().then_some(total)
}

fn read_event(e: &IcalEvent, zones: &Zones) -> Option<Event> {
    let uid = text(e, "UID");
    let dtstart = prop(e, "DTSTART")?;
    let start = when(dtstart.value.as_deref()?, dtstart, zones)?;
    let one =
        |name: &str| prop(e, name).and_then(|p| p.value.as_deref().and_then(|v| when(v, p, zones)));
    let all = |name: &str| -> Vec<When> {
        e.properties
            .iter()
            .filter(|p| p.name.eq_ignore_ascii_case(name))
            .flat_map(|p| whens(p, zones))
            .collect()
    };
    Some(Event {
        uid,
        start,
        end: one("DTEND"),
        duration: prop(e, "DURATION").and_then(|p| p.value.as_deref().and_then(duration)),
        rrules: e
            .properties
            .iter()
            .filter(|p| p.name.eq_ignore_ascii_case("RRULE"))
            .filter_map(|p| p.value.clone())
            .collect(),
        rdates: all("RDATE"),
        exdates: all("EXDATE"),
        recurrence_id: one("RECURRENCE-ID"),
        free: text(e, "TRANSP").eq_ignore_ascii_case("TRANSPARENT"),
        cancelled: text(e, "STATUS").eq_ignore_ascii_case("CANCELLED"),
        summary: text(e, "SUMMARY"),
        description: text(e, "DESCRIPTION"),
        url: prop(e, "URL").and_then(|p| p.value.clone()),
    })
}

impl Event {
    /// The length of each instance; None when it has none.
    fn length(&self, default: Tz) -> Option<Duration> {
        let length = match (self.end, self.duration) {
            (Some(end), _) => end.utc(default) - self.start.utc(default),
            (None, Some(d)) => d,
            (None, None) if self.start.is_date() => Duration::days(1),
            (None, None) => Duration::zero(),
        };
        (length > Duration::zero()).then(|| length.min(LONGEST))
    }

    fn counts(&self, o: Options) -> bool {
        !self.cancelled
            && (o.include_free || !self.free)
            && (o.include_all_day || !self.start.is_date())
    }

    fn instance(&self, start: DateTime<Utc>, length: Duration) -> Instance {
        Instance {
            uid: self.uid.clone(),
            start,
            end: start + length,
            summary: self.summary.clone(),
            description: self.description.clone(),
            url: self.url.clone(),
        }
    }
}

/// `UNTIL` as rrule wants it next to a zoned DTSTART: in UTC. A date or a floating
/// time is read in the event's zone.
fn until_in_utc(rule: &str, tz: Tz) -> String {
    rule.split(';')
        .map(|part| {
            let Some(v) = part
                .strip_prefix("UNTIL=")
                .or_else(|| part.strip_prefix("until="))
            else {
                return part.to_string();
            };
            if v.ends_with('Z') {
                return part.to_string();
            }
            let naive = if v.len() == 8 {
                NaiveDate::parse_from_str(v, "%Y%m%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(23, 59, 59))
            } else {
                parse_naive(v)
            };
            match naive {
                Some(t) => format!(
                    "UNTIL={}",
                    local(tz, t).with_timezone(&Utc).format("%Y%m%dT%H%M%SZ")
                ),
                None => part.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// The start of each occurrence of a master event from `after` (inclusive) to
/// `before`; just DTSTART for one that does not recur.
fn occurrences(
    e: &Event,
    default: Tz,
    after: DateTime<Utc>,
    before: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let start = e.start.utc(default);
    if e.rrules.is_empty() && e.rdates.is_empty() {
        return vec![start];
    }
    let tz = e.start.zone(default);
    let dtstart = e.start.at(default).with_timezone(&rrule::Tz::Tz(tz));
    let in_tz = |w: When| w.at(tz).with_timezone(&rrule::Tz::Tz(tz));
    let mut set = rrule::RRuleSet::new(dtstart);
    for r in &e.rrules {
        let parsed = rrule::RRule::from_str(&until_in_utc(r, tz)).and_then(|r| r.validate(dtstart));
        match parsed {
            Ok(rule) => set = set.rrule(rule),
            Err(err) => tracing::debug!(uid = %e.uid, "calendar: RRULE ignored: {err}"),
        }
    }
    // DTSTART is the first occurrence even when the rule does not match it (RFC 5545).
    set = set.rdate(dtstart);
    for w in &e.rdates {
        set = set.rdate(in_tz(*w));
    }
    for w in &e.exdates {
        set = set.exdate(in_tz(*w));
    }
    let tzr = rrule::Tz::Tz(tz);
    set.after(after.with_timezone(&tzr))
        .before(before.with_timezone(&tzr))
        .all(MAX_OCCURRENCES)
        .dates
        .into_iter()
        .map(|d| d.with_timezone(&Utc))
        .collect()
}

/// Parses iCalendar documents (a feed is one, a CalDAV collection one per resource).
fn parse(docs: &[String]) -> Result<Vec<(IcalCalendar, Tz)>, String> {
    let mut out = Vec::new();
    for doc in docs {
        for cal in ical::IcalParser::new(BufReader::new(doc.as_bytes())) {
            let cal = cal.map_err(|e| format!("not iCalendar: {e}"))?;
            let default = Zones::of(&cal).default;
            out.push((cal, default));
        }
    }
    Ok(out)
}

/// The instances of `docs` that overlap `from..to`, earliest first, at most `cap`.
pub fn expand(
    docs: &[String],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    options: Options,
    cap: usize,
) -> Result<Vec<Instance>, String> {
    // Every VEVENT, grouped by UID: the master and its overrides.
    let mut by_uid: HashMap<String, (Vec<Event>, Tz)> = HashMap::new();
    for (cal, default) in parse(docs)? {
        let zones = Zones::of(&cal);
        for e in &cal.events {
            if let Some(ev) = read_event(e, &zones) {
                by_uid
                    .entry(ev.uid.clone())
                    .or_insert_with(|| (Vec::new(), default))
                    .0
                    .push(ev);
            }
        }
    }
    let mut out = Vec::new();
    for (events, default) in by_uid.values() {
        let overridden: Vec<DateTime<Utc>> = events
            .iter()
            .filter_map(|e| e.recurrence_id.map(|r| r.utc(*default)))
            .collect();
        for e in events {
            let Some(length) = e.length(*default) else {
                continue;
            };
            if e.recurrence_id.is_some() {
                let start = e.start.utc(*default);
                if e.counts(options) && start + length > from && start < to {
                    out.push(e.instance(start, length));
                }
                continue;
            }
            if !e.counts(options) {
                continue;
            }
            for start in occurrences(e, *default, from - length, to) {
                if overridden.contains(&start) || start + length <= from || start >= to {
                    continue;
                }
                out.push(e.instance(start, length));
            }
        }
    }
    out.sort_by(|a, b| a.start.cmp(&b.start).then(a.uid.cmp(&b.uid)));
    out.dedup_by(|a, b| a.start == b.start && a.uid == b.uid);
    out.truncate(cap);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn cal(events: &str) -> Vec<String> {
        vec![format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{events}END:VCALENDAR\r\n"
        )]
    }

    fn starts(docs: &[String], from: &str, to: &str, o: Options) -> Vec<String> {
        expand(docs, t(from), t(to), o, 100)
            .unwrap()
            .iter()
            .map(|i| i.start.to_rfc3339())
            .collect()
    }

    const BERLIN_DAILY: &str = "BEGIN:VEVENT\r\nUID:daily\r\nSUMMARY:Standup\r\n\
        DTSTART;TZID=Europe/Berlin:20260323T100000\r\nDTEND;TZID=Europe/Berlin:20260323T101500\r\n\
        RRULE:FREQ=DAILY;COUNT=10\r\nEXDATE;TZID=Europe/Berlin:20260325T100000\r\nEND:VEVENT\r\n";

    #[test]
    fn a_daily_event_keeps_its_local_time_across_the_dst_change() {
        // Berlin moves to summer time on 2026-03-29: 10:00 is 09:00 UTC before, 08:00 after.
        let docs = cal(BERLIN_DAILY);
        let got = starts(
            &docs,
            "2026-03-27T00:00:00Z",
            "2026-03-31T00:00:00Z",
            Options::default(),
        );
        assert_eq!(
            got,
            [
                "2026-03-27T09:00:00+00:00",
                "2026-03-28T09:00:00+00:00",
                "2026-03-29T08:00:00+00:00",
                "2026-03-30T08:00:00+00:00",
            ]
        );
        let all = expand(
            &docs,
            t("2026-03-01T00:00:00Z"),
            t("2026-05-01T00:00:00Z"),
            Options::default(),
            100,
        )
        .unwrap();
        assert_eq!(all.len(), 9, "COUNT=10 less one EXDATE");
        assert_eq!(all[0].end - all[0].start, Duration::minutes(15));
        assert_eq!(all[0].summary, "Standup");
        assert!(
            !all.iter().any(|i| i.start == t("2026-03-25T09:00:00Z")),
            "the EXDATE is gone"
        );
    }

    #[test]
    fn an_override_replaces_its_occurrence() {
        let docs = cal(&format!(
            "{BERLIN_DAILY}BEGIN:VEVENT\r\nUID:daily\r\nSUMMARY:Moved standup\r\n\
             RECURRENCE-ID;TZID=Europe/Berlin:20260324T100000\r\n\
             DTSTART;TZID=Europe/Berlin:20260324T140000\r\nDTEND;TZID=Europe/Berlin:20260324T143000\r\n\
             END:VEVENT\r\nBEGIN:VEVENT\r\nUID:daily\r\nRECURRENCE-ID;TZID=Europe/Berlin:20260326T100000\r\n\
             STATUS:CANCELLED\r\nDTSTART;TZID=Europe/Berlin:20260326T100000\r\n\
             DTEND;TZID=Europe/Berlin:20260326T101500\r\nEND:VEVENT\r\n"
        ));
        let got = expand(
            &docs,
            t("2026-03-24T00:00:00Z"),
            t("2026-03-27T23:00:00Z"),
            Options::default(),
            100,
        )
        .unwrap();
        let got: Vec<_> = got
            .iter()
            .map(|i| (i.start.to_rfc3339(), i.summary.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("2026-03-24T13:00:00+00:00".to_string(), "Moved standup"),
                ("2026-03-27T09:00:00+00:00".to_string(), "Standup"),
            ],
            "the 24th moved, the 25th excluded, the 26th cancelled"
        );
    }

    #[test]
    fn free_and_all_day_events_count_only_when_asked() {
        let docs = cal(
            "BEGIN:VEVENT\r\nUID:free\r\nTRANSP:TRANSPARENT\r\nDTSTART:20260601T100000Z\r\n\
             DTEND:20260601T110000Z\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:day\r\n\
             DTSTART;VALUE=DATE:20260601\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:busy\r\n\
             DTSTART:20260601T120000Z\r\nDURATION:PT30M\r\nEND:VEVENT\r\n",
        );
        let (from, to) = ("2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z");
        assert_eq!(
            starts(&docs, from, to, Options::default()),
            ["2026-06-01T12:00:00+00:00"]
        );
        let all = Options {
            include_free: true,
            include_all_day: true,
        };
        assert_eq!(
            starts(&docs, from, to, all),
            [
                "2026-06-01T00:00:00+00:00",
                "2026-06-01T10:00:00+00:00",
                "2026-06-01T12:00:00+00:00"
            ]
        );
    }

    #[test]
    fn floating_times_follow_x_wr_timezone_and_until_may_be_local() {
        let docs = vec![
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nX-WR-TIMEZONE:America/New_York\r\n\
            BEGIN:VEVENT\r\nUID:f\r\nDTSTART:20260105T090000\r\nDTEND:20260105T100000\r\n\
            RRULE:FREQ=WEEKLY;UNTIL=20260112T090000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
                .to_string(),
        ];
        assert_eq!(
            starts(
                &docs,
                "2026-01-01T00:00:00Z",
                "2026-02-01T00:00:00Z",
                Options::default()
            ),
            ["2026-01-05T14:00:00+00:00", "2026-01-12T14:00:00+00:00"]
        );
    }

    #[test]
    fn vtimezone_names_and_mozilla_prefixes_resolve() {
        assert_eq!(
            iana("/mozilla.org/20050126_1/Europe/Berlin"),
            Some(Tz::Europe__Berlin)
        );
        let docs = cal(
            "BEGIN:VTIMEZONE\r\nTZID:W. Europe Standard Time\r\nX-LIC-LOCATION:Europe/Paris\r\n\
             END:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:w\r\n\
             DTSTART;TZID=W. Europe Standard Time:20260701T120000\r\nDURATION:PT1H\r\nEND:VEVENT\r\n",
        );
        assert_eq!(
            starts(
                &docs,
                "2026-07-01T00:00:00Z",
                "2026-07-02T00:00:00Z",
                Options::default()
            ),
            ["2026-07-01T10:00:00+00:00"]
        );
    }

    #[test]
    fn an_instance_under_way_counts_and_the_cap_keeps_the_earliest() {
        let docs = cal(
            "BEGIN:VEVENT\r\nUID:h\r\nDTSTART:20260101T000000Z\r\nDTEND:20260101T010000Z\r\n\
             RRULE:FREQ=HOURLY\r\nEND:VEVENT\r\n",
        );
        let got = expand(
            &docs,
            t("2026-01-01T05:30:00Z"),
            t("2026-01-03T00:00:00Z"),
            Options::default(),
            3,
        )
        .unwrap();
        let got: Vec<_> = got.iter().map(|i| i.start.to_rfc3339()).collect();
        assert_eq!(
            got,
            [
                "2026-01-01T05:00:00+00:00",
                "2026-01-01T06:00:00+00:00",
                "2026-01-01T07:00:00+00:00"
            ]
        );
    }

    #[test]
    fn a_local_time_in_the_dst_gap_is_taken_an_hour_later() {
        // 2026-03-29 02:30 does not exist in Berlin (02:00 → 03:00): 03:30 CEST, 01:30 UTC.
        let docs = cal(
            "BEGIN:VEVENT\r\nUID:gap\r\nDTSTART;TZID=Europe/Berlin:20260329T023000\r\n\
             DURATION:PT30M\r\nEND:VEVENT\r\n",
        );
        assert_eq!(
            starts(
                &docs,
                "2026-03-29T00:00:00Z",
                "2026-03-30T00:00:00Z",
                Options::default()
            ),
            ["2026-03-29T01:30:00+00:00"]
        );
    }

    #[test]
    fn durations_and_garbage() {
        assert_eq!(duration("PT1H30M"), Some(Duration::minutes(90)));
        assert_eq!(duration("P1W"), Some(Duration::weeks(1)));
        assert_eq!(duration("P1DT2H"), Some(Duration::hours(26)));
        assert_eq!(duration("-PT1H"), None);
        assert_eq!(duration("PT"), Some(Duration::zero()));
        assert!(expand(
            &["BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n".into()],
            Utc::now(),
            Utc::now(),
            Options::default(),
            10
        )
        .is_err());
        assert!(expand(
            &[String::new()],
            Utc::now(),
            Utc::now(),
            Options::default(),
            10
        )
        .unwrap()
        .is_empty());
    }
}
