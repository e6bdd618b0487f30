//! The `segment` command-line tool; see [`dam_examples::cli::segment`].

use std::process::ExitCode;

fn main() -> ExitCode {
    dam_examples::init_logging();
    dam_examples::cli::segment::main_from(std::env::args_os())
}
