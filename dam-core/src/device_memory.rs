//! Allocator readings on the cubecl backends (feature `cube`), taken below burn's fusion layer.
//!
//! `Device::memory_pool_usage` first drains the fusion queue of the calling thread, so reading it
//! from a second thread while the first one works would not see the first one's in-flight
//! memory. This reads the cubecl allocator directly: a monitoring thread can sample the bytes in
//! use while a workload runs (the benchmark's sampled peak).

use burn::backend::{Backend, DispatchDevice};
use burn::tensor::Device;
use burn_cubecl::CubeBackend;

/// Bytes the device allocator holds for live tensors right now (`None` off the cubecl
/// backends).
pub fn bytes_in_use(device: &Device) -> Option<u64> {
    match device.as_dispatch() {
        DispatchDevice::Cube(d) => CubeBackend::memory_pool_usage(d).map(|u| u.bytes_in_use),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}
