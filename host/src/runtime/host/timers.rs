//! `timers`: one-shot timers and the wall clock.

use std::time::Duration;

use super::super::wit::since_v0_2_0::presence::connector::timers;
use super::InstanceState;
use crate::io::HandleKind;
use crate::store::now_ms;

impl timers::Host for InstanceState {
    fn set_timer(&mut self, after_ms: u64) -> wasmtime::Result<u32> {
        // Running out of timer handles is a guest leak; end the run rather
        // than hand out a handle that never fires.
        self.io
            .set_timer(Duration::from_millis(after_ms.min(30 * 24 * 3600 * 1000)))
            .map_err(|e| wasmtime::format_err!("set-timer: {e}"))
    }

    fn cancel(&mut self, timer: u32) -> wasmtime::Result<()> {
        self.io.close(HandleKind::Timer, timer);
        Ok(())
    }

    fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(now_ms())
    }
}
