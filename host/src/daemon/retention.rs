//! Retention: which versions' files and recorded outputs, and which backups, may go (a pure decision over a snapshot), and the sweep that removes them.
//!
//! A version past the policy keeps its rows (versions, runs, outcomes,
//! deploys: the history) and loses its bulk: work tree, artifact, logs,
//! and the outputs and transcripts recorded for replays. Nothing a tier
//! needs goes: a current or candidate version, one with work in flight, or
//! one of the last `keep_promoted` versions promoted to a tier (a
//! rollback's artifact).

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::shared::Daemon;
use crate::config::Retention;
use crate::domain::Version;
use crate::store::{BackupAge, StoreError, VersionAge};

/// What a sweep removes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sweep {
    pub versions: Vec<Version>,
    pub backups: Vec<i64>,
    /// Compiled units of the shared build cache, oldest first, and their bytes.
    pub cache_units: Vec<String>,
    pub cache_bytes: u64,
}

/// Decides what the policy lets go. `versions` and `backups` are those
/// whose files are still kept; `needed` are the versions a tier needs.
/// A version stays if it is needed, among the newest `keep_versions`, or
/// younger than `keep_for` (either keeps it); without either bound nothing
/// goes. The newest `keep_backups` backups stay (the newest always).
pub fn plan(
    policy: &Retention,
    versions: &[VersionAge],
    needed: &HashSet<Version>,
    backups: &[BackupAge],
    now: DateTime<Utc>,
) -> Sweep {
    let mut sweep = Sweep::default();
    if policy.keep_versions.is_some() || policy.keep_for.is_some() {
        let mut newest_first: Vec<&VersionAge> = versions.iter().collect();
        newest_first.sort_by(|a, b| {
            b.registered_at.cmp(&a.registered_at).then_with(|| b.version.cmp(&a.version))
        });
        let within = |at: DateTime<Utc>| match policy.keep_for {
            None => false,
            Some(d) => {
                match chrono::Duration::from_std(d).ok().and_then(|d| now.checked_sub_signed(d)) {
                    Some(cutoff) => at >= cutoff,
                    // The window reaches back before the earliest time there is.
                    None => true,
                }
            }
        };
        for (rank, v) in newest_first.into_iter().enumerate() {
            let by_count = policy.keep_versions.is_some_and(|n| rank < n as usize);
            let by_age = within(v.registered_at);
            if !(needed.contains(&v.version) || by_count || by_age) {
                sweep.versions.push(v.version.clone());
            }
        }
    }
    if let Some(keep) = policy.keep_backups {
        let mut newest_first: Vec<&BackupAge> = backups.iter().collect();
        newest_first.sort_by(|a, b| b.fetched_at.cmp(&a.fetched_at).then(b.id.cmp(&a.id)));
        sweep.backups = newest_first.into_iter().skip(keep.max(1) as usize).map(|b| b.id).collect();
    }
    sweep
}

/// Plans from the store's current state and removes what the plan lets
/// go; with `dry_run`, only says. Returns what went (or would go).
pub async fn sweep(daemon: &Arc<Daemon>, dry_run: bool) -> Result<Sweep, StoreError> {
    let policy = &daemon.config.retention;
    let versions = daemon.store.versions_with_files().await?;
    let backups = daemon.store.backups_on_disk().await?;
    let mut needed = daemon.store.versions_in_use().await?;
    // What a rollback may deploy: the one under way, and the last versions
    // promoted to each tier that a rollback may still go to.
    let rollbacks = daemon.store.rollbacks().await?;
    for rollback in &rollbacks {
        if rollback.progress == crate::domain::RollbackProgress::Pending {
            needed.insert(rollback.to.clone());
        }
    }
    for tier in &daemon.config.tiers {
        let barred: Vec<&Version> =
            rollbacks.iter().filter(|r| r.tier == tier.name).map(|r| &r.from).collect();
        let arrivals = daemon.store.arrivals(&tier.name).await?;
        needed.extend(
            arrivals
                .into_iter()
                .map(|(v, _)| v)
                .filter(|v| !barred.contains(&v))
                .take(policy.keep_promoted()),
        );
    }
    let mut sweep = plan(policy, &versions, &needed, &backups, Utc::now());
    if let (Some(cap), Some(cache)) =
        (policy.cache_max_bytes, super::work::cache::BuildCache::of(daemon))
    {
        // The base is trimmed (never a version's own layer): no view of it
        // is mounted meanwhile.
        let _held = daemon.cache_lock.write().await;
        let target = cache.base_target();
        let trimmed = tokio::task::spawn_blocking(move || {
            let units = super::work::cache::units(&target);
            let oldest = super::work::cache::over_cap(&units, cap);
            let mut gone = (Vec::new(), 0u64);
            for unit in oldest.into_iter().map(|i| &units[i]) {
                if !dry_run {
                    unit.remove();
                }
                gone.0.push(unit.name.clone());
                gone.1 += unit.bytes;
            }
            gone
        })
        .await
        .unwrap_or_default();
        (sweep.cache_units, sweep.cache_bytes) = trimmed;
    }
    if dry_run {
        return Ok(sweep);
    }
    let data = daemon.data_dir();
    let work = daemon.work_dir();
    for version in &sweep.versions {
        let Some(row) = daemon.store.version(version).await? else { continue };
        // Files first, then rows: a kill in between leaves the version
        // unswept, and the next sweep removes what is left and marks it.
        // A version's layer of the build cache goes with its tree: never
        // fed (it was not promoted), it is nobody's to build on.
        let gone = [
            super::work::cache::BuildCache::at(&work).version_dir(&row.git_sha),
            work.join("worktrees").join(row.git_sha.as_str()),
            work.join("artifacts").join(version.to_string()),
            data.join("logs").join(version.to_string()),
        ];
        for path in gone {
            if let Err(e) = tokio::fs::remove_dir_all(&path).await
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %e, "retention: could not remove");
            }
        }
        daemon.store.sweep_version(version, Utc::now()).await?;
        tracing::info!(%version, "retention: files removed");
    }
    for id in &sweep.backups {
        if let Some(path) = daemon.store.remove_backup(*id, Utc::now()).await?
            && let Err(e) = tokio::fs::remove_file(&path).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path, error = %e, "retention: could not remove a backup");
        }
    }
    Ok(sweep)
}

/// Sweeps at start and then every `EVERY`, while the daemon runs; a policy
/// that keeps everything makes each a no-op.
pub async fn run(daemon: Arc<Daemon>) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(10 * 60);
    loop {
        let swept = sweep(&daemon, false).await;
        super::metrics::global().retention_sweep(swept.is_ok());
        if let Err(e) = swept {
            tracing::warn!(error = %e, "retention: sweep failed; trying again later");
        }
        tokio::time::sleep(EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(days: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + days * 86_400, 0).unwrap()
    }

    fn versions(list: &[(&str, i64)]) -> Vec<VersionAge> {
        list.iter()
            .map(|(v, day)| VersionAge { version: v.parse().unwrap(), registered_at: at(*day) })
            .collect()
    }

    fn names(sweep: &Sweep) -> Vec<String> {
        sweep.versions.iter().map(ToString::to_string).collect()
    }

    fn needed(list: &[&str]) -> HashSet<Version> {
        list.iter().map(|v| v.parse().unwrap()).collect()
    }

    const FIVE: &[(&str, i64)] =
        &[("0.1.0", 0), ("0.2.0", 1), ("0.3.0", 2), ("0.4.0", 3), ("0.5.0", 4)];

    fn policy(
        keep_versions: Option<u32>,
        keep_days: Option<u64>,
        keep_backups: Option<u32>,
    ) -> Retention {
        Retention {
            keep_versions,
            keep_for: keep_days.map(|d| Duration::from_secs(d * 86_400)),
            keep_backups,
            cache_max_bytes: None,
            keep_promoted: None,
        }
    }

    #[test]
    fn without_a_policy_nothing_goes() {
        let sweep = plan(&policy(None, None, None), &versions(FIVE), &needed(&[]), &[], at(100));
        assert_eq!(sweep, Sweep::default());
    }

    #[test]
    fn the_newest_n_stay() {
        let sweep = plan(&policy(Some(2), None, None), &versions(FIVE), &needed(&[]), &[], at(5));
        assert_eq!(names(&sweep), ["0.3.0", "0.2.0", "0.1.0"]);
    }

    #[test]
    fn what_a_tier_needs_stays_whatever_its_age() {
        let sweep = plan(
            &policy(Some(1), None, None),
            &versions(FIVE),
            &needed(&["0.1.0", "0.3.0"]),
            &[],
            at(5),
        );
        assert_eq!(names(&sweep), ["0.4.0", "0.2.0"]);
    }

    #[test]
    fn either_bound_keeps_a_version() {
        // Two days back from day 4.5 reaches 0.4.0 (day 3) but not 0.3.0.
        let now = at(4) + chrono::Duration::hours(12);
        let sweep = plan(&policy(Some(1), Some(2), None), &versions(FIVE), &needed(&[]), &[], now);
        assert_eq!(names(&sweep), ["0.3.0", "0.2.0", "0.1.0"]);
        let by_age_only =
            plan(&policy(None, Some(2), None), &versions(FIVE), &needed(&[]), &[], now);
        assert_eq!(names(&by_age_only), ["0.3.0", "0.2.0", "0.1.0"]);
    }

    #[test]
    fn ten_years_from_the_earliest_time_does_not_overflow() {
        let sweep = plan(
            &policy(None, Some(3660), None),
            &versions(FIVE),
            &needed(&[]),
            &[],
            DateTime::<Utc>::MIN_UTC,
        );
        assert_eq!(sweep, Sweep::default(), "nothing is older than the earliest time");
    }

    #[test]
    fn the_newest_backups_stay_and_the_newest_always() {
        let backups: Vec<BackupAge> =
            (1..=4).map(|id| BackupAge { id, fetched_at: at(id) }).collect();
        let sweep = plan(&policy(None, None, Some(2)), &[], &needed(&[]), &backups, at(9));
        assert_eq!(sweep.backups, [2, 1]);
        let sweep = plan(&policy(None, None, Some(0)), &[], &needed(&[]), &backups, at(9));
        assert_eq!(sweep.backups, [3, 2, 1], "the latest backup is what gates use");
    }
}
