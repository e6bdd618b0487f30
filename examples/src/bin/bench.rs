//! The `bench` command-line tool; see [`dam_examples::cli::bench`].

use std::process::ExitCode;

fn main() -> ExitCode {
    dam_examples::init_logging();
    dam_examples::cli::bench::main_from(std::env::args_os())
}
