//! Runs the real `kith` binary against a temporary data directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The pinned "now" of every test: Thursday 2026-11-26 10:00 UTC.
pub(crate) const NOW: &str = "2026-11-26T10:00:00Z";

/// The outcome of one run of the binary.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    #[track_caller]
    pub(crate) fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "expected success, got {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub(crate) fn json(self) -> Value {
        let run = self.ok();
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", run.stdout))
    }
}

/// A data directory plus the binary to run against it.
#[derive(Debug)]
pub(crate) struct Kith {
    pub(crate) dir: tempfile::TempDir,
}

impl Kith {
    /// A fresh, initialised store.
    pub(crate) fn new() -> Kith {
        let k = Kith::empty();
        k.run(&["init"]).ok();
        k
    }

    /// A data directory without a store.
    pub(crate) fn empty() -> Kith {
        Kith {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub(crate) fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kith"));
        c.env_remove("KITH_HOME")
            .env("KITH_NOW", NOW)
            .env("TZ", "UTC")
            .env("NO_COLOR", "1");
        c
    }

    /// Runs `kith --data <dir> args...`.
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        let data = self.data();
        let mut c = self.command();
        c.arg("--data").arg(&data).args(args);
        run(c)
    }

    /// Runs `kith --data <dir> args...` with `stdin` as its standard input.
    pub(crate) fn run_stdin(&self, args: &[&str], stdin: &str) -> Run {
        use std::io::Write;
        let mut c = self.command();
        c.arg("--data")
            .arg(self.data())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        // A command that fails before reading stdin closes it: ignore that.
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    /// Runs with `--json` and parses the output.
    #[track_caller]
    pub(crate) fn json(&self, args: &[&str]) -> Value {
        let mut all: Vec<&str> = args.to_vec();
        all.push("--json");
        self.run(&all).json()
    }

    /// Adds a contact and returns its id.
    #[track_caller]
    pub(crate) fn add_contact(&self, name: &str, extra: &[&str]) -> String {
        let mut args = vec!["contact", "add", name];
        args.extend_from_slice(extra);
        let v = self.json(&args);
        v["id"].as_str().unwrap().to_string()
    }

    /// Logs an interaction and returns its id.
    #[track_caller]
    pub(crate) fn log(&self, args: &[&str]) -> String {
        let mut all = vec!["log"];
        all.extend_from_slice(args);
        let v = self.json(&all);
        v["id"].as_str().unwrap().to_string()
    }

    /// Every `--json` listing: the observable state of the store.
    pub(crate) fn snapshot(&self) -> Vec<String> {
        let listings: &[&[&str]] = &[
            &["contact", "list", "--all", "--limit", "100000"],
            &["timeline", "--deleted", "--limit", "100000"],
            &["followups"],
            &["duplicates"],
            &["project", "list"],
            &["goal", "list"],
            &["settings", "show"],
        ];
        listings
            .iter()
            .map(|args| self.json(args).to_string())
            .collect()
    }

    /// Runs a command that must fail with an input error (exit 2) whose
    /// one-line message contains `needle`, and checks nothing changed.
    #[track_caller]
    pub(crate) fn input_error(&self, args: &[&str], needle: &str) -> String {
        self.failure(args, 2, needle)
    }

    /// Runs a command that must fail with `code`, a one-line `error: ...`
    /// containing `needle`, no stdout, and an unchanged store.
    #[track_caller]
    pub(crate) fn failure(&self, args: &[&str], code: i32, needle: &str) -> String {
        let before = self.snapshot();
        let run = self.run(args);
        assert_eq!(
            run.code, code,
            "{args:?}: stdout {} stderr {}",
            run.stdout, run.stderr
        );
        let err = run.stderr.trim_end();
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: not one line: {err}");
        assert!(err.contains(needle), "{args:?}: '{err}' lacks '{needle}'");
        assert_eq!(run.stdout, "", "{args:?}: printed on failure");
        assert_eq!(before, self.snapshot(), "{args:?} changed the store");
        err.to_string()
    }
}

impl Kith {
    /// A command that must fail (exit 2, one line) where no store exists,
    /// and must not create one.
    #[track_caller]
    pub(crate) fn failure_without_store(&self, args: &[&str], needle: &str) {
        let r = self.run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.trim_end().lines().count(), 1, "{}", r.stderr);
        assert!(r.stderr.contains(needle), "{}", r.stderr);
        assert!(
            !self.data().join("kith.redb").exists(),
            "{args:?} created a store"
        );
    }
}

pub(crate) fn run(mut c: Command) -> Run {
    let out = c.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// The repository root (the crate lives in cli/).
pub(crate) fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// Sorted keys of a JSON object.
pub(crate) fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}
