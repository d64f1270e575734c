//! Entry point of the `galley` binary.

use std::process::ExitCode;

use clap::Parser;

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
