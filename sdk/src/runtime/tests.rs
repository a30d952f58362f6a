//! The runtime under the test kit: keyed timers, handles, refusals.

use super::TimerMux;

#[test]
fn timers_fire_in_deadline_order_and_setting_again_moves_them() {
    let mut mux = TimerMux::default();
    mux.set("b", 200);
    mux.set("a", 100);
    mux.set("c", 100);
    mux.set("b", 50);
    assert_eq!(mux.next_deadline(), Some(50));
    assert_eq!(mux.due(100), ["b", "a", "c"]);
    assert_eq!(mux.next_deadline(), None);
    mux.set("d", 10);
    mux.cancel(&"d");
    assert!(mux.due(1_000).is_empty());
}
