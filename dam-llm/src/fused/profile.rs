//! Device time per stage of the fused decoder layers, for a kernel-level breakdown of a
//! decode step (`bench --profile-step`). Off unless [`begin`] was called: then every stage of
//! every [`super::decoder_layer`] is bracketed by a device profiling window (cubecl's
//! `profile_start` / `profile_end`), which serialises the stages — so the sum is an upper
//! bound of the stages' share of an unprofiled step, and the windows include each stage's own
//! launch latency.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static ON: AtomicBool = AtomicBool::new(false);
static STAGES: Mutex<Vec<StageTime>> = Mutex::new(Vec::new());

/// One stage's total over the profiled window.
#[derive(Clone, Debug, PartialEq)]
pub struct StageTime {
    /// The stage's name.
    pub stage: &'static str,
    /// Its summed wall-clock time.
    pub total: Duration,
    /// How many times it ran (once per layer and forward pass).
    pub calls: usize,
}

/// Starts recording (and clears earlier records).
pub fn begin() {
    if let Ok(mut s) = STAGES.lock() {
        s.clear();
    }
    ON.store(true, Ordering::SeqCst);
}

/// Stops recording and returns the stages in first-seen order.
pub fn end() -> Vec<StageTime> {
    ON.store(false, Ordering::SeqCst);
    STAGES.lock().map(|mut s| std::mem::take(&mut *s)).unwrap_or_default()
}

pub(super) fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

pub(super) fn record(stage: &'static str, time: Duration) {
    if let Ok(mut s) = STAGES.lock() {
        match s.iter_mut().find(|t| t.stage == stage) {
            Some(t) => {
                t.total += time;
                t.calls += 1;
            }
            None => s.push(StageTime {
                stage,
                total: time,
                calls: 1,
            }),
        }
    }
}
