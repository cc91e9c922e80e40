//! The suite's PostgreSQL: `./x test` starts a throwaway cluster on 127.0.0.1 and exports its URL as `SANDO_TEST_PG_URL`; each test takes a database of its own there.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection as _;

/// The cluster's URL, from `./x test`.
pub fn cluster_url() -> String {
    std::env::var("SANDO_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "SANDO_TEST_PG_URL is not set: run the suite with `./x test`, which starts PostgreSQL"
        )
    })
}

/// A new, empty database on the suite's cluster; its URL.
pub async fn fresh_database() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let url = cluster_url();
    let name = format!("sando_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let mut admin = sqlx::PgConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("the suite's PostgreSQL at {url}: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
    admin.close().await.unwrap();
    let (base, _) = url.rsplit_once('/').expect("a URL with a database");
    format!("{base}/{name}")
}

/// When the suite runs on PostgreSQL (`SANDO_TEST_STORE=postgres`, as
/// `./x test`'s second pass over the daemon's tests does), a `[store]`
/// table naming a fresh database for one daemon; else nothing.
pub fn store_table() -> Option<String> {
    if std::env::var("SANDO_TEST_STORE").as_deref() != Ok("postgres") {
        return None;
    }
    // Callers may be inside a runtime already: make the database on a
    // thread of its own.
    let url = std::thread::spawn(|| {
        tokio::runtime::Runtime::new().expect("a runtime").block_on(fresh_database())
    })
    .join()
    .expect("a fresh database");
    Some(format!("\n[store]\nurl = \"{url}\"\n"))
}
