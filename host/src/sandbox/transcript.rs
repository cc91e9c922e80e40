//! A runner's transcript: every `host` call of one gate run and what the host answered, recorded so a candidate runner can be replayed against it.
//!
//! A replay answers from the transcript instead of the world: no process
//! starts. The candidate must make the same calls in the same order; the
//! first call it makes otherwise (another program, other arguments, other
//! environment, another order, a call too many or too few) is its
//! divergence, which the runner review reports as the runner's.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::params::GateParams;
use super::runner_host::{Backup, BurnInClock, Confirmation, RunnerEnv};
use crate::domain::RawOutput;

/// What the host answered a runner in one gate run, call by call. Spawned
/// outputs are kept beside it (in the same order as the `Spawn` calls).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transcript {
    pub tier: String,
    pub version: String,
    /// The parameters in contract 0.1's `key = value` form.
    pub params: Vec<(String, String)>,
    /// The typed parameters (absent from transcripts recorded before 0.2,
    /// which are read back from `params`).
    #[serde(default)]
    pub gate_params: Option<GateParams>,
    pub burn_in_clock: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub confirmation: Option<(String, DateTime<Utc>)>,
    pub latest_backup: Option<(i64, String, DateTime<Utc>)>,
    pub calls: Vec<Call>,
}

/// One `host` call, as the runner made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Call {
    Context,
    Spawn(SpawnCall),
    BurnInClock,
    Confirmation,
    LatestBackup,
}

/// A spawn request. Environment values are kept only as digests, and the
/// arguments with URL passwords redacted beside a digest of them as they
/// were: a transcript never holds a secret, yet a changed one is still seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpawnCall {
    pub program: String,
    pub args: Vec<String>,
    pub args_digest: String,
    pub env: Vec<(String, String)>,
    pub stop_after_ms: Option<u64>,
}

impl SpawnCall {
    pub fn new(
        program: &str,
        args: &[String],
        env: &[(String, String)],
        stop_after_ms: Option<u64>,
    ) -> SpawnCall {
        let digest = |value: &str| {
            let hash = Sha256::digest(value.as_bytes());
            format!(
                "sha256:{}",
                hash.iter().take(12).map(|b| format!("{b:02x}")).collect::<String>()
            )
        };
        SpawnCall {
            program: program.to_owned(),
            args: args.iter().map(|a| crate::executor::redact(a)).collect(),
            args_digest: digest(&args.join("\0")),
            env: env.iter().map(|(k, v)| (k.clone(), digest(v))).collect(),
            stop_after_ms,
        }
    }
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Call::Context => f.write_str("context"),
            Call::Spawn(spawn) => {
                write!(f, "spawn `{}", spawn.program)?;
                for arg in &spawn.args {
                    write!(f, " {arg}")?;
                }
                f.write_str("`")?;
                if !spawn.env.is_empty() {
                    let keys: Vec<&str> = spawn.env.iter().map(|(k, _)| k.as_str()).collect();
                    write!(f, " with {}", keys.join(", "))?;
                }
                Ok(())
            }
            Call::BurnInClock => f.write_str("burn-in-clock"),
            Call::Confirmation => f.write_str("confirmation"),
            Call::LatestBackup => f.write_str("latest-backup"),
        }
    }
}

impl Transcript {
    /// What a finished run's environment recorded.
    pub fn of(env: &RunnerEnv) -> Transcript {
        Transcript {
            tier: env.tier.to_string(),
            version: env.version.to_string(),
            params: env.params.pairs(),
            gate_params: Some(env.params.clone()),
            burn_in_clock: env.burn_in_clock.as_ref().map(|c| (c.started_at, c.now)),
            confirmation: env.confirmation.as_ref().map(|c| (c.by.clone(), c.at)),
            latest_backup: env.latest_backup.as_ref().map(|b| (b.id, b.path.clone(), b.fetched_at)),
            calls: env.calls.clone(),
        }
    }

    /// Sets `env` up to answer as this transcript did, with `outputs` (one
    /// per recorded spawn, in order) as what spawned programs printed.
    pub fn replay_into(&self, env: &mut RunnerEnv, outputs: Vec<RawOutput>) {
        // Recorded from parsed values, so they parse again; if one somehow
        // does not, the review's placeholder stands for both runners alike.
        if let Ok(tier) = self.tier.parse() {
            env.tier = tier;
        }
        if let Ok(version) = self.version.parse() {
            env.version = version;
        }
        env.params = match &self.gate_params {
            Some(params) => params.clone(),
            None => GateParams::from_pairs(env.gate(), &self.params),
        };
        env.burn_in_clock =
            self.burn_in_clock.map(|(started_at, now)| BurnInClock { started_at, now });
        env.confirmation = self.confirmation.clone().map(|(by, at)| Confirmation { by, at });
        env.latest_backup = self.latest_backup.clone().map(|(id, path, fetched_at)| Backup {
            id,
            path,
            fetched_at,
        });
        env.replay = Some(Replay {
            expected: self.calls.iter().cloned().collect(),
            outputs: outputs.into(),
            position: 0,
            divergence: None,
            fallback: None,
        });
    }
}

/// The host's side of a replay: the calls still expected, and the first
/// divergence.
#[derive(Debug, Clone)]
pub struct Replay {
    expected: VecDeque<Call>,
    outputs: VecDeque<RawOutput>,
    position: usize,
    divergence: Option<String>,
    /// A probe's answer to every spawn (no transcript to follow).
    fallback: Option<RawOutput>,
}

/// What a replayed call gets.
pub enum Answer {
    /// As recorded; for a spawn, what the program printed.
    Recorded(Option<RawOutput>),
    /// Not what the transcript holds: the runner diverged.
    Diverged,
}

impl Replay {
    /// A probe rather than a replay: every spawn is answered with `output`
    /// and nothing diverges; what matters is which calls a runner makes.
    pub fn answering(output: RawOutput) -> Replay {
        Replay {
            expected: VecDeque::new(),
            outputs: VecDeque::new(),
            position: 0,
            divergence: None,
            fallback: Some(output),
        }
    }

    /// Checks `call` against the next recorded one.
    pub fn answer(&mut self, call: &Call) -> Answer {
        if let Some(output) = &self.fallback {
            return Answer::Recorded(matches!(call, Call::Spawn(_)).then(|| output.clone()));
        }
        if self.divergence.is_some() {
            return Answer::Diverged;
        }
        self.position += 1;
        match self.expected.pop_front() {
            Some(expected) if expected == *call => {
                let output = matches!(call, Call::Spawn(_)).then(|| self.outputs.pop_front());
                Answer::Recorded(output.flatten())
            }
            Some(expected) => {
                self.divergence =
                    Some(format!("call {} was {expected}, now {call}", self.position));
                Answer::Diverged
            }
            None => {
                self.divergence = Some(format!(
                    "call {} is new: {call} (the recorded run ended before)",
                    self.position
                ));
                Answer::Diverged
            }
        }
    }

    /// The first divergence, counting recorded calls the runner never made.
    pub fn divergence(&self) -> Option<String> {
        if let Some(divergence) = &self.divergence {
            return Some(divergence.clone());
        }
        self.expected.front().map(|missing| {
            format!("call {} was {missing}, now the run ends before it", self.position + 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spawn(program: &str, args: &[&str], env: &[(&str, &str)]) -> Call {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let env: Vec<(String, String)> =
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Call::Spawn(SpawnCall::new(program, &args, &env, None))
    }

    fn replay(calls: Vec<Call>) -> Replay {
        let outputs = calls
            .iter()
            .filter(|c| matches!(c, Call::Spawn(_)))
            .map(|_| RawOutput {
                stdout: b"out".to_vec(),
                stderr: Vec::new(),
                end: crate::domain::ProcessEnd::Exited(0),
                duration_ms: None,
            })
            .collect::<Vec<_>>();
        Replay {
            expected: calls.into(),
            outputs: outputs.into(),
            position: 0,
            divergence: None,
            fallback: None,
        }
    }

    #[test]
    fn the_same_calls_get_the_recorded_answers() {
        let calls = vec![Call::Context, spawn("cargo", &["test"], &[("K", "v")])];
        let mut replay = replay(calls.clone());
        assert!(matches!(replay.answer(&calls[0]), Answer::Recorded(None)));
        match replay.answer(&calls[1]) {
            Answer::Recorded(Some(output)) => assert_eq!(output.stdout, b"out"),
            _ => panic!("the spawn gets its output"),
        }
        assert_eq!(replay.divergence(), None);
    }

    #[test]
    fn other_arguments_another_order_and_missing_calls_diverge() {
        let recorded = vec![Call::Context, spawn("cargo", &["test"], &[])];
        let mut other_args = replay(recorded.clone());
        other_args.answer(&Call::Context);
        assert!(matches!(other_args.answer(&spawn("cargo", &["build"], &[])), Answer::Diverged));
        assert_eq!(
            other_args.divergence().unwrap(),
            "call 2 was spawn `cargo test`, now spawn `cargo build`"
        );
        let mut reordered = replay(recorded.clone());
        assert!(matches!(reordered.answer(&recorded[1]), Answer::Diverged));
        assert!(reordered.divergence().unwrap().starts_with("call 1 was context"));
        let mut stops_early = replay(recorded.clone());
        stops_early.answer(&Call::Context);
        assert_eq!(
            stops_early.divergence().unwrap(),
            "call 2 was spawn `cargo test`, now the run ends before it"
        );
        let mut extra = replay(vec![Call::Context]);
        extra.answer(&Call::Context);
        assert!(matches!(extra.answer(&Call::Confirmation), Answer::Diverged));
        assert!(extra.divergence().unwrap().contains("is new: confirmation"));
    }

    #[test]
    fn url_passwords_in_arguments_are_redacted_and_still_compared() {
        let secret = spawn("sqlx", &["--database-url", "postgres://u:hunter2@db/x"], &[]);
        let json = serde_json::to_string(&secret).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
        assert!(!secret.to_string().contains("hunter2"), "{secret}");
        let other = spawn("sqlx", &["--database-url", "postgres://u:other@db/x"], &[]);
        assert_ne!(secret, other);
    }

    #[test]
    fn environment_values_are_kept_as_digests_and_still_compared() {
        let secret = spawn("sqlx", &[], &[("DATABASE_URL", "postgres://u:hunter2@db/x")]);
        let json = serde_json::to_string(&secret).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
        let other = spawn("sqlx", &[], &[("DATABASE_URL", "postgres://u:other@db/x")]);
        assert_ne!(secret, other);
        let mut replay = replay(vec![secret]);
        assert!(matches!(replay.answer(&other), Answer::Diverged));
    }
}
