//! The ways the chaos connector fails. Each one must survive the optimiser,
//! which would otherwise delete work whose result nobody reads.

use std::hint::black_box;

/// Spins forever, as a connector stuck in a loop would. Only the host's
/// per-call deadline ends it.
pub fn spin() -> ! {
    let mut turns: u64 = 0;
    loop {
        turns = black_box(turns.wrapping_add(1));
    }
}

/// Allocates and touches memory in 1 MiB chunks forever, as a leaking
/// connector would. Only the host's memory limit ends it.
pub fn bomb() -> ! {
    const CHUNK: usize = 1 << 20;
    const PAGE: usize = 4096;
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; CHUNK];
        // Write every page so the memory is really used, whatever the
        // allocator does with zeroed requests.
        for byte in chunk.iter_mut().step_by(PAGE) {
            *byte = 1;
        }
        hoard.push(black_box(chunk));
        black_box(&hoard);
    }
}
