//! Leadership of a shared store, as the daemon sees it: what a daemon stands with (`Candidacy`) and who leads (`Leader`), whichever backend keeps it.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How a `sando serve` stands for the lead of a store several daemons share.
#[derive(Debug, Clone)]
pub struct Candidacy {
    /// The URL the other daemons send writes to while this one leads.
    pub url: String,
    /// How long a lead lasts unrenewed before a standby takes it.
    pub lease: Duration,
}

/// Who leads a shared store: the daemon that plans, runs workers, deploys
/// and sweeps, and the epoch every write it makes is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    pub epoch: i64,
    /// The daemon, as it names itself: host and process id.
    pub holder: String,
    /// Where its clients are sent (`[store] advertise`).
    pub url: String,
    pub since: DateTime<Utc>,
    pub renewed_at: DateTime<Utc>,
}

/// How this daemon stands: what its store lets it write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The store's only daemon (a SQLite file is its data directory's).
    Alone,
    /// It leads under this epoch: its writes are checked against it.
    Leads(i64),
    /// Another daemon leads (or none yet): it serves reads only.
    Standby,
    /// A command on a store it does not serve (an import, a copy): its
    /// writes are not fenced.
    Command,
}

impl Standing {
    /// Whether this daemon plans, runs workers, deploys and sweeps.
    pub fn acts(self) -> bool {
        matches!(self, Standing::Alone | Standing::Leads(_))
    }
}

/// The daemon name a leader is known by: host and process id.
pub fn holder_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("sando serve on {} (pid {})", host.trim(), std::process::id())
}
