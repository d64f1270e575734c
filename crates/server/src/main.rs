//! Entry point of the `galley` binary.

use std::process::ExitCode;

use clap::Parser;

/// jemalloc returns freed memory to the system within seconds and costs less CPU per
/// request than glibc's allocator here (ARCHITECTURE.md, Memory).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = galley_server::Cli::parse();
    match galley_server::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line: the error and its causes, outermost first.
            eprintln!("galley: {err:#}");
            ExitCode::FAILURE
        }
    }
}
