//! The `golden` binary: parse arguments, run, exit with the code the run chose.

use clap::Parser;

/// mimalloc rather than the system allocator: reading a site's live state makes many small
/// allocations on several threads at once, where it cuts the CPU time by about a quarter
/// (`cargo bench --bench plan`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    golden::cli::main(golden::cli::Cli::parse())
}
