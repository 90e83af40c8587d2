//! kith: the command-line tool for laptops and scripts.
//!
//! `args` defines the grammar, `commands` runs each command against the
//! kith-core store, `render` owns every byte written to the terminal, `when`
//! parses times and dates, `resolve` turns names into ids, and `error` maps
//! failures to one `error: ...` line and an exit code (2 for input errors, 1
//! otherwise). See docs/CLI.md.

mod args;
mod commands;
mod datadir;
mod demo;
mod error;
mod render;
mod resolve;
mod when;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

/// Longest total wait for a store that another process is writing to
/// (the store itself already waits `commands::sync::LOCK_WAIT_MS` at each
/// open; this covers whatever slips through, on the same wall-clock budget).
const LOCK_WAIT_MS_MAX: u64 = 2_000;
/// First pause before retrying; it doubles on each attempt.
const LOCK_RETRY_FIRST_MS: u64 = 20;

fn main() -> ExitCode {
    init_logging();
    let started = std::time::Instant::now();
    let mut pause_ms = LOCK_RETRY_FIRST_MS;
    loop {
        // Parsed afresh on each attempt: commands are consumed by running them.
        let cli = match args::Cli::try_parse() {
            Ok(cli) => cli,
            Err(e) => return usage_error(e),
        };
        match commands::run(cli) {
            Ok(()) => return ExitCode::SUCCESS,
            // `kith timeline | head`: the reader left; that is not an error.
            Err(error::CliError::OutputClosed) => return ExitCode::SUCCESS,
            // Another process holds the store for a moment (a parallel `kith`,
            // a sync): the engine wrote nothing and handlers print only after
            // their write, so running the command again is safe. Bounded.
            Err(e) if e.is_store_locked() && elapsed_ms(started) < LOCK_WAIT_MS_MAX => {
                let waited_ms = elapsed_ms(started);
                let pause = pause_ms.min(LOCK_WAIT_MS_MAX.saturating_sub(waited_ms));
                std::thread::sleep(std::time::Duration::from_millis(pause));
                pause_ms *= 2;
            }
            Err(e) => return fail(&e),
        }
    }
}

/// The engine's warnings (a store another process holds, a compaction or index rebuild that
/// failed) go to stderr as `kith: WARN ...` lines; `KITH_LOG` (an `EnvFilter`, e.g. `info` or
/// `kith_core=debug`) shows more.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KITH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // A second subscriber cannot be installed; ignoring that keeps the first.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .with_ansi(false)
        .try_init();
}

fn elapsed_ms(since: std::time::Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Prints `error: ...` on stderr and returns the matching exit code.
fn fail(err: &error::CliError) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "error: {}", err.message());
    ExitCode::from(err.exit_code())
}

/// Help and version go to stdout as clap prints them; every other parse
/// error becomes one `error: ...` line (clap's first line, which names the
/// problem) and exit code 2, like every other input error.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(if e.use_stderr() { error::EXIT_INPUT } else { 0 })
        }
        _ => {
            let text = e.render().to_string();
            // clap's message runs until the first blank line (then tips and usage).
            let first: Vec<&str> = text
                .lines()
                .map(str::trim)
                .skip_while(|l| l.is_empty())
                .take_while(|l| !l.is_empty() && !l.starts_with("Usage:"))
                .collect();
            let first = first.join(" ");
            let first = first.trim_start_matches("error:").trim();
            let err = error::CliError::input(format!("{first} (see `kith --help`)"));
            fail(&err)
        }
    }
}
