//! Runnable examples for multipeer; see `examples/`. This library holds what several examples share: command-line
//! flags, logging set-up, and [`router::Router`], a small op-routed JSON layer over a session.

pub mod router;

use std::str::FromStr;

/// The command line of an example: `--name value` options and bare `--flag`s.
#[derive(Debug, Clone)]
pub struct Args(Vec<String>);

impl Args {
    /// The arguments after the program name.
    pub fn from_env() -> Self {
        Self(std::env::args().skip(1).collect())
    }

    /// The value after `name`, if given.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.0.get(i + 1))
            .cloned()
    }

    /// The value after `name` parsed as `T`, or `default` if absent; an error names the flag.
    pub fn parse_or<T: FromStr>(&self, name: &str, default: T) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(value) => value.parse().map_err(|e| format!("{name} {value}: {e}")),
        }
    }

    /// Whether the bare flag `name` is present.
    pub fn flag(&self, name: &str) -> bool {
        self.0.iter().any(|a| a == name)
    }
}

/// Sends logs to stderr, filtered by `RUST_LOG`, so stdout carries only the example's own output.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
}
