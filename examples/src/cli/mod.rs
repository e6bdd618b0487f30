//! The command-line tools, each callable with its own argument list (`main_from`), so the
//! per-tool binaries and the multi-call `dam-tools` share one implementation.

pub mod bench;
pub mod describe;
pub mod probe;
pub mod segment;
pub mod tools;
