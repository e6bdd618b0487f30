//! `dam-tools`: `describe`, `segment` and `bench` in one binary; see [`dam_examples::cli::tools`].

use std::process::ExitCode;

fn main() -> ExitCode {
    dam_examples::init_logging();
    dam_examples::cli::tools::main_from(std::env::args_os())
}
