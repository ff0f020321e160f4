//! The presence truth table (CONTRACT §5): how connections and the chosen status
//! combine into what everybody else sees. Pure functions, no I/O.

use crate::model::{ConnStatus, Status};

/// Aggregates a user's live connections: any online → online, else any away → away,
/// else (no connections) offline.
pub fn connection_status<I: IntoIterator<Item = ConnStatus>>(conns: I) -> Status {
    let mut agg = Status::Offline;
    for c in conns {
        match c {
            ConnStatus::Online => return Status::Online,
            ConnStatus::Away => agg = Status::Away,
        }
    }
    agg
}

/// The displayed status for a user with live connections aggregated to `connection`.
/// A user without connections is offline: callers that want the REST rule
/// ("shows the chosen status at once") use [`displayed_without_connections`].
pub fn displayed(connection: Status, default: Status) -> Status {
    match (connection, default) {
        (Status::Offline, _) => Status::Offline,
        (_, Status::Offline) => Status::Offline,
        (conn, Status::Online) => conn,
        (_, chosen) => chosen,
    }
}

/// What a user with no live connection shows right after choosing `default` through
/// setStatus (or an expiry restore): the chosen status itself, `offline` for invisible.
pub fn displayed_without_connections(default: Status) -> Status {
    default
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConnStatus as C;
    use Status::*;

    #[test]
    fn aggregation_of_connections() {
        assert_eq!(connection_status([]), Offline);
        assert_eq!(connection_status([C::Online]), Online);
        assert_eq!(connection_status([C::Away]), Away);
        assert_eq!(connection_status([C::Away, C::Online]), Online);
        assert_eq!(connection_status([C::Online, C::Away]), Online);
        assert_eq!(connection_status([C::Away, C::Away]), Away);
    }

    #[test]
    fn every_cell_of_the_truth_table() {
        // rows: statusConnection; columns: statusDefault online, away, busy, offline
        let table = [
            (Online, [Online, Away, Busy, Offline]),
            (Away, [Away, Away, Busy, Offline]),
            (Offline, [Offline, Offline, Offline, Offline]),
        ];
        for (conn, row) in table {
            for (default, want) in [Online, Away, Busy, Offline].into_iter().zip(row) {
                assert_eq!(
                    displayed(conn, default),
                    want,
                    "conn={conn:?} default={default:?}"
                );
            }
        }
    }

    #[test]
    fn without_connections_the_choice_shows() {
        for s in [Online, Away, Busy, Offline] {
            assert_eq!(displayed_without_connections(s), s);
        }
    }
}
