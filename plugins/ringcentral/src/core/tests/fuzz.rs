//! Fuzz target `ringcentral-ws` (`tools/fuzzkit`): the seeds of
//! `fuzz/corpus/ringcentral-json/`, mutated, as text frames on a live
//! WebSocket of the whole engine (two extensions watched and read), so
//! what the engine does with a frame (connection details, subscription
//! answers, notifications, heartbeats, errors) is held to no panic too.

use std::cell::RefCell;

use super::*;

/// Inputs after which the engine is built afresh: a frame may end the
/// session or the subscription, after which later frames would be ignored.
const FRESH_EVERY: u64 = 256;

fn live() -> (H, u64) {
    let mut h = H::new(settings(&[]), Stored::default());
    let conn = h.live(&["101", "102"]);
    (h, conn)
}

#[test]
fn fuzz_ringcentral_ws() {
    let corpus = fuzzkit::load_corpus(env!("CARGO_MANIFEST_DIR"), "ringcentral-json");
    let state = RefCell::new((live(), 0u64));
    // Inputs that made the engine report a presence: proof that mutated
    // frames get past the framing into the state machine.
    let reported = std::cell::Cell::new(0u64);
    fuzzkit::check(
        "ringcentral-ws",
        &corpus,
        crate::fuzz::DICTIONARY,
        fuzzkit::Budget::from_env(),
        |input| {
            let mut state = state.borrow_mut();
            let ((h, conn), n) = &mut *state;
            *n += 1;
            if *n % FRESH_EVERY == 0 {
                (*h, *conn) = live();
            }
            let text = String::from_utf8_lossy(input);
            h.now += 1_000;
            let now = h.now;
            h.core.on_ws_text(*conn, &text, now);
            let actions = h.core.take_actions();
            if actions.iter().any(|a| matches!(a, Action::Presence(_))) {
                reported.set(reported.get() + 1);
            }
        },
    );
    println!(
        "fuzz ringcentral-ws: {} inputs reported a presence",
        reported.get()
    );
    assert!(reported.get() > 0, "no input reached the presence reports");
}
