//! Fuzz target `graph-notifications` (`tools/fuzzkit`): the seeds of
//! `fuzz/corpus/graph-json/`, mutated, POSTed as change and lifecycle
//! notifications to the whole engine with a live subscription. The seeds'
//! subscription id, client state and user id are swapped for the live
//! ones first, so mutations start from notifications the engine accepts.

use std::cell::{Cell, RefCell};

use super::*;

/// Inputs after which the engine is built afresh (a lifecycle event may
/// remove the subscription, after which every notification is refused).
const FRESH_EVERY: u64 = 256;

const SEED_SUBSCRIPTION: &str = "7f105c7d-2dc5-4530-97cd-4e7ae6534c07";
const SEED_CLIENT_STATE: &str = "secretClientValue";
const SEED_USER: &str = "fa8bf3dc-eca7-46b7-bad1-db199b62afc3";

#[test]
fn fuzz_graph_notifications() {
    let corpus = fuzzkit::load_corpus(env!("CARGO_MANIFEST_DIR"), "graph-json");
    let state = RefCell::new((subscribed(), 0u64));
    // Inputs the engine accepted (202): proof that mutated notifications
    // get past the client-state check.
    let accepted = Cell::new(0u64);
    fuzzkit::check(
        "graph-notifications",
        &corpus,
        crate::fuzz::DICTIONARY,
        fuzzkit::Budget::from_env(),
        |input| {
            let mut state = state.borrow_mut();
            let ((h, sub, cs), n) = &mut *state;
            *n += 1;
            if *n % FRESH_EVERY == 0 {
                (*h, *sub, *cs) = subscribed();
            }
            let body = String::from_utf8_lossy(input)
                .replace(SEED_SUBSCRIPTION, sub)
                .replace(SEED_CLIENT_STATE, cs)
                .replace(SEED_USER, &guid(1));
            h.now += 1_000;
            let hook = Hook {
                method: "POST",
                path: "/notify",
                query: "",
                body: body.as_bytes(),
            };
            if h.core.on_webhook(&hook, h.now).status == 202 {
                accepted.set(accepted.get() + 1);
            }
            h.core.take_actions();
        },
    );
    println!(
        "fuzz graph-notifications: {} inputs accepted",
        accepted.get()
    );
    assert!(accepted.get() > 0, "no input got past the client state");
}
