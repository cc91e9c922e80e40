//! Builds `$OUT_DIR/schema.sqlite` from `migrations/`, and sets how sqlx's
//! compile-time query checks run: against the committed offline data
//! (`host/.sqlx/`), or, while `./x sqlx-prepare` writes that data, against
//! this schema or a live PostgreSQL.

use std::path::{Path, PathBuf};

/// This crate's directory, read when the script runs: cargo reuses a
/// compiled build script for a checkout at another path (the held-back
/// copy `./x test` builds, a CI clone on the same target), so a path baked
/// in with `env!` would point into that other checkout.
fn manifest_dir() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
}

fn main() {
    let migrations = manifest_dir().join("../migrations");
    println!("cargo:rerun-if-changed={}", migrations.display());
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let db = out.join("schema.sqlite");
    let _ = std::fs::remove_file(&db);
    let connection = rusqlite::Connection::open(&db).expect("create schema.sqlite");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&migrations)
        .expect("read migrations/")
        .map(|e| e.expect("migrations/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    for file in files {
        println!("cargo:rerun-if-changed={}", file.display());
        let sql = std::fs::read_to_string(&file).expect("read migration");
        connection.execute_batch(&sql).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
    // Queries are checked against the offline data in `host/.sqlx/` (both
    // backends' queries live in this crate, and sqlx's macros check against
    // one database at a time). `./x sqlx-prepare` writes that data: a pass
    // against this schema, then one against a PostgreSQL with
    // `migrations/postgres` applied.
    println!("cargo:rerun-if-env-changed=SANDO_SQLX_PREPARE");
    println!("cargo:rustc-check-cfg=cfg(sqlx_prepare_sqlite)");
    match std::env::var("SANDO_SQLX_PREPARE").as_deref() {
        // Without the PostgreSQL store: SQLite accepts much of its SQL too,
        // and would describe it as its own.
        Ok("sqlite") => {
            println!("cargo:rustc-env=DATABASE_URL=sqlite://{}", db.display());
            println!("cargo:rustc-cfg=sqlx_prepare_sqlite");
        }
        // DATABASE_URL from the environment.
        Ok("postgres") => {}
        _ => println!("cargo:rustc-env=SQLX_OFFLINE=true"),
    }
    shipped_fixtures(&out);
}

/// `$OUT_DIR/shipped_fixtures.rs`: every case under `fixtures/<kind>/`,
/// its files compiled into the binary, so the shadow test always has them.
fn shipped_fixtures(out: &Path) {
    let root = manifest_dir().join("../fixtures");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut cases = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        if dir.join("case.toml").is_file() {
            cases.push(dir);
            continue;
        }
        for entry in std::fs::read_dir(&dir).expect("read fixtures/") {
            let path = entry.expect("fixtures/ entry").path();
            // `capture/` holds the projects fixtures are captured from.
            if path.is_dir() && !path.ends_with("fixtures/capture") {
                stack.push(path);
            }
        }
    }
    cases.sort();
    let mut code = String::from("&[\n");
    for case in cases {
        println!("cargo:rerun-if-changed={}", case.display());
        let name = case.strip_prefix(&root).expect("below fixtures/").display().to_string();
        let file = |f: &str| format!("{:?}", case.join(f).display().to_string());
        code.push_str(&format!(
            "    ShippedCase {{ dir: {name:?}, case_toml: include_str!({}), stdout: include_bytes!({}), stderr: include_bytes!({}), expected: include_str!({}) }},\n",
            file("case.toml"),
            file("stdout"),
            file("stderr"),
            file("expected.json"),
        ));
    }
    code.push(']');
    std::fs::write(out.join("shipped_fixtures.rs"), code).expect("write shipped_fixtures.rs");
}
