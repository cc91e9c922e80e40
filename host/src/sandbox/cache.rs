//! On-disk cache of compiled components, so a restart does not recompile.
//!
//! Keyed by the component's sha256 and the engine's compatibility hash:
//! a different wasmtime or different engine settings never reuse an entry.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use super::Digest;

pub struct ComponentCache {
    dir: PathBuf,
}

impl ComponentCache {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// `$SANDO_CACHE_DIR`, else `$XDG_CACHE_HOME/sando`, else `~/.cache/sando`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("SANDO_CACHE_DIR") {
            return Some(PathBuf::from(dir));
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            return Some(PathBuf::from(dir).join("sando"));
        }
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache").join("sando"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry(&self, engine: &Engine, digest: &Digest) -> PathBuf {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        self.dir.join(format!("{digest}-{:016x}.cwasm", hasher.finish()))
    }

    /// The compiled component, if a usable cache entry exists.
    pub fn get(&self, engine: &Engine, digest: &Digest) -> Option<Component> {
        let path = self.entry(engine, digest);
        if !path.exists() {
            return None;
        }
        // SAFETY: entries are only written by `put` below, from
        // `Component::serialize` of this same engine configuration (the file
        // name carries the engine's compatibility hash), into a directory
        // owned by the operator running Sando. wasmtime still checks the
        // header and rejects a mismatching entry, which we then recompile.
        unsafe { Component::deserialize_file(engine, &path) }.ok()
    }

    /// Best effort: a cache that cannot be written only costs a recompile.
    pub fn put(&self, engine: &Engine, digest: &Digest, component: &Component) {
        let Ok(bytes) = component.serialize() else {
            return;
        };
        if std::fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        let path = self.entry(engine, digest);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, &path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}
