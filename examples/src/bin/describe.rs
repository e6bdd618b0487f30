//! The `describe` command-line tool; see [`dam_examples::cli::describe`].

use std::process::ExitCode;

fn main() -> ExitCode {
    dam_examples::init_logging();
    dam_examples::cli::describe::main_from(std::env::args_os())
}
