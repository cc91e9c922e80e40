//! Builds `$OUT_DIR/schema.sqlite` from `migrations/` and points sqlx's
//! compile-time query checks at it (`DATABASE_URL`), so every `query!` in the
//! host is checked against the schema the daemon will run with.

use std::path::{Path, PathBuf};

fn main() {
    let migrations = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
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
    println!("cargo:rustc-env=DATABASE_URL=sqlite://{}", db.display());
}
