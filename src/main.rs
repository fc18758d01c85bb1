//! The `golden` binary: parse arguments, run, exit with the code the run chose.

use clap::Parser;

fn main() -> std::process::ExitCode {
    golden::cli::main(golden::cli::Cli::parse())
}
