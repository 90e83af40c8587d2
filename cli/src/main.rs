//! kith: the command-line tool for laptops and scripts.
//!
//! `args` defines the grammar, `commands` runs each command against the
//! kith-core store, `render` owns every byte written to the terminal, `when`
//! parses times and dates, `resolve` turns names into ids, and `error` maps
//! failures to one `error: ...` line and an exit code (2 for input errors, 1
//! otherwise). See docs/CLI.md.

// Scaffolding: the command handlers that use these land with the engine API.
#![allow(dead_code)]

mod args;
mod datadir;
mod error;
mod render;
mod resolve;
mod when;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let _ = cli;
    ExitCode::SUCCESS
}

/// Prints `error: ...` on stderr and returns the matching exit code.
#[allow(dead_code)]
fn fail(err: &error::CliError) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "error: {}", err.message());
    ExitCode::from(err.exit_code())
}
