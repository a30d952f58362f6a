//! Echo marks: which presence NOTIFYs show the hub's own writes.
//!
//! The hub PUBLISHes each endpoint's state in a tuple of its own (see
//! `core::hub_tuple`), and the presence server composes it with whatever
//! the person's devices publish: Kamailio's `presence_xml` copies every
//! publication's tuples and persons side by side into one document. A
//! NOTIFY is the echo of write `w` when it carries the hub's tuple *and*
//! reads as `w`'s state. The tuple alone is not enough: while the hub's
//! state stands, a call on the person's phone changes the composed
//! document, and that change is the person's, not the hub's.

use std::collections::{HashMap, VecDeque};

use presence_connector_sdk::{RichPresence, UpdateOrigin, WriteId};

use crate::body::Pidf;

/// Writes remembered per endpoint. A NOTIFY may show an older write than
/// the last (it was sent before the newer PUBLISH arrived), but not one
/// several writes back.
const REMEMBERED: usize = 4;

/// The hub's recent writes per endpoint and the state each one shows.
#[derive(Default)]
pub struct Echoes {
    by_endpoint: HashMap<String, Written>,
}

struct Written {
    /// The hub's tuple id for this endpoint.
    tuple: String,
    /// Newest first.
    writes: VecDeque<(WriteId, RichPresence)>,
}

impl Echoes {
    /// Write `write` published `shows` (the rich presence its PIDF reads as
    /// on its own) in tuple `tuple` for `endpoint`.
    pub fn record(&mut self, endpoint: &str, tuple: &str, write: WriteId, shows: RichPresence) {
        let w = self
            .by_endpoint
            .entry(endpoint.to_string())
            .or_insert_with(|| Written {
                tuple: tuple.to_string(),
                writes: VecDeque::new(),
            });
        w.tuple = tuple.to_string();
        w.writes.push_front((write, shows));
        w.writes.truncate(REMEMBERED);
    }

    /// Why `endpoint` shows `pidf`: the newest of our writes whose state
    /// it is, when it carries our tuple; otherwise the platform's doing.
    pub fn origin(&self, endpoint: &str, pidf: &Pidf) -> UpdateOrigin {
        self.by_endpoint
            .get(endpoint)
            .filter(|w| pidf.tuple_ids.contains(&w.tuple))
            .and_then(|w| w.writes.iter().find(|(_, shows)| *shows == pidf.rich))
            .map_or(UpdateOrigin::Platform, |(id, _)| {
                UpdateOrigin::HubWrite(*id)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use presence_connector_sdk::Availability;

    fn rich(a: Availability) -> RichPresence {
        RichPresence {
            availability: a,
            activity: None,
            note: None,
        }
    }

    fn pidf(tuples: &[&str], a: Availability) -> Pidf {
        Pidf {
            entity: String::new(),
            tuple_ids: tuples.iter().map(|t| t.to_string()).collect(),
            rich: rich(a),
            on_the_phone: false,
            observed_at_ms: None,
            raw: vec![],
        }
    }

    #[test]
    fn our_tuple_with_our_state_is_the_echo_of_that_write() {
        let mut e = Echoes::default();
        e.record("alice", "hub-1", 7, rich(Availability::DoNotDisturb));
        e.record("alice", "hub-1", 8, rich(Availability::Away));
        let away = pidf(&["phone", "hub-1"], Availability::Away);
        assert_eq!(e.origin("alice", &away), UpdateOrigin::HubWrite(8));
        // A NOTIFY sent before write 8 arrived still shows write 7.
        let dnd = pidf(&["hub-1"], Availability::DoNotDisturb);
        assert_eq!(e.origin("alice", &dnd), UpdateOrigin::HubWrite(7));
    }

    #[test]
    fn anything_else_is_the_platform() {
        let mut e = Echoes::default();
        e.record("alice", "hub-1", 7, rich(Availability::Away));
        // Our tuple, but the person's phone changed the picture.
        let busy = pidf(&["hub-1", "phone"], Availability::Busy);
        assert_eq!(e.origin("alice", &busy), UpdateOrigin::Platform);
        // Our state without our tuple: the person set it themselves.
        let away = pidf(&["phone"], Availability::Away);
        assert_eq!(e.origin("alice", &away), UpdateOrigin::Platform);
        // Nothing written to bob.
        assert_eq!(e.origin("bob", &away), UpdateOrigin::Platform);
    }

    #[test]
    fn only_the_last_few_writes_are_remembered() {
        let mut e = Echoes::default();
        e.record("alice", "hub-1", 1, rich(Availability::Offline));
        for id in 2..=REMEMBERED as u64 + 1 {
            e.record("alice", "hub-1", id, rich(Availability::Away));
        }
        let offline = pidf(&["hub-1"], Availability::Offline);
        assert_eq!(e.origin("alice", &offline), UpdateOrigin::Platform);
    }
}
