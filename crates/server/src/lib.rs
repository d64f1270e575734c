//! The `galley` program as a library: command line, configuration, start-up and
//! shutdown. `main.rs` only parses arguments and reports errors; tests start the same
//! [`Application`] in-process.

mod backup;
mod cli;
mod commands;
mod config;
mod jsonlog;
mod jwt_secret;
mod logwriter;
mod startup;
mod telemetry;
mod textlog;

pub use cli::{Cli, Command};
pub use commands::run;
pub use config::{Config, LogFormat, load_config};
pub use logwriter::WriterGuard;
pub use startup::Application;
pub use telemetry::init_telemetry;
