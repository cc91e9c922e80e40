//! A version's approvals at a tier: loaded from the store and the repository, decided by the planner's pure rules (`plan::tally`, `plan::may_approve`).

use super::plan::{self, ApprovalSnap, Tally};
use super::shared::Daemon;
use crate::config::{ApprovalPolicy, Tier};
use crate::domain::{Approval, ApprovalState, Version};
use crate::executor::ProcessSpec;
use crate::store::StoreError;

/// Where a version stands at a tier with an approval policy.
#[derive(Debug, Clone)]
pub(crate) struct Standing {
    pub policy: ApprovalPolicy,
    pub approvals: Vec<ApprovalSnap>,
    /// The digest of the tier's other gates' outcomes now.
    pub evidence: String,
    /// The operator who wrote the version's commit, when the policy
    /// forbids the author and it was asked for.
    pub author: Option<String>,
    /// The commit's author e-mail could not be read: `forbid_author` cannot
    /// be checked, so approvals are refused rather than risk the author's.
    pub author_unknown: bool,
    pub tally: Tally,
}

impl Standing {
    /// What `/api/state` shows.
    pub fn view(&self) -> ApprovalState {
        ApprovalState {
            have: self.tally.have(),
            need: self.tally.need,
            from: self.policy.from.iter().map(ToString::to_string).collect(),
            forbid_author: self.policy.forbid_author,
            approvals: self
                .approvals
                .iter()
                .zip(&self.tally.voided)
                .map(|(a, voided)| Approval { by: a.by.clone(), at: a.at, voided: *voided })
                .collect(),
        }
    }
}

/// `version`'s standing at `tier`, or `None` when the tier has no policy.
/// With `with_author`, the commit's author is looked up in the repository
/// (a git process), so only where it decides something.
pub(crate) async fn standing(
    daemon: &Daemon,
    tier: &Tier,
    version: &Version,
    with_author: bool,
) -> Result<Option<Standing>, StoreError> {
    let Some(policy) = tier.approvals.clone() else { return Ok(None) };
    let runs = daemon.store.latest_runs(&tier.name, version).await?;
    let evidence = plan::evidence_digest(
        &runs.iter().map(|r| (r.gate, r.run_id, r.outcome.as_ref())).collect::<Vec<_>>(),
    );
    let approvals: Vec<ApprovalSnap> = daemon
        .store
        .approvals(&tier.name, version)
        .await?
        .into_iter()
        .map(|a| ApprovalSnap { by: a.by, at: a.at, evidence: a.evidence })
        .collect();
    let (author, author_unknown) = if with_author && policy.forbid_author {
        match author_of(daemon, version).await? {
            Some(author) => (author, false),
            None => (None, true),
        }
    } else {
        (None, false)
    };
    let tally = plan::tally(&policy, &approvals, &evidence, author.as_deref());
    Ok(Some(Standing { policy, approvals, evidence, author, author_unknown, tally }))
}

/// The operator whose `emails` hold the git author e-mail of `version`'s
/// commit (`Some(None)`: an author no operator is), or `None` when the
/// e-mail cannot be read. git runs on the daemon's own `tools` executor.
async fn author_of(
    daemon: &Daemon,
    version: &Version,
) -> Result<Option<Option<String>>, StoreError> {
    let Some(record) = daemon.store.version(version).await? else { return Ok(None) };
    let spec = ProcessSpec {
        program: "git".into(),
        args: vec![
            "-C".into(),
            daemon.config.project.repo.display().to_string(),
            "log".into(),
            "-1".into(),
            "--format=%ae".into(),
            record.git_sha.to_string(),
        ],
        timeout: Some(daemon.config.defaults.git_timeout),
        ..ProcessSpec::default()
    };
    let finished =
        daemon.executors.tools.run(spec, None, tokio_util::sync::CancellationToken::new()).await;
    let email = String::from_utf8_lossy(&finished.output.stdout).trim().to_ascii_lowercase();
    if email.is_empty() || finished.output.end != crate::domain::ProcessEnd::Exited(0) {
        tracing::warn!(%version, "the commit's author could not be read; forbid_author cannot be checked");
        return Ok(None);
    }
    Ok(Some(
        daemon
            .config
            .operators
            .iter()
            .find(|o| o.emails.contains(&email))
            .map(|o| o.name.to_string()),
    ))
}
