//! The sandbox gate components run in: one engine, a memory cap and a fuel
//! budget per call, no filesystem, network or environment, and every fault
//! turned into a typed [`ComponentFault`].
//!
//! A trap poisons an instance, so every call instantiates afresh from an
//! [`InstancePre`] (cheap with the pooling allocator).

mod cache;
pub mod params;
mod runner_host;
pub mod transcript;
mod v0_1;
mod v0_2;

use std::fmt;
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};
use wasmtime::component::{
    Component, ComponentExportIndex, HasSelf, InstancePre, Linker, ResourceTable,
    types::ComponentItem,
};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

const GUEST_STDERR_CAP: usize = 4096;

use crate::domain::{ComponentFault, GateFailure, GateKind, GateStatus, RawOutput};

pub use cache::ComponentCache;
pub use params::{GateParams, Invocation};
pub use runner_host::{
    Backup, BurnInClock, Confirmation, JobBook, RecordSpawn, Resume, RunnerEnv, Stopped,
};

/// Per-call resource limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Cap on one instance's linear memory.
    pub memory_bytes: u64,
    /// Fuel (roughly, wasm instructions) one call may burn.
    pub fuel: u64,
}

impl Default for Limits {
    fn default() -> Self {
        // Classifying the largest captured output (~1 MB) takes well under a
        // tenth of each; an endless loop is cut off in about a second.
        Self { memory_bytes: 64 << 20, fuel: 2_000_000_000 }
    }
}

/// The contract this host speaks: the newest it serves.
pub const CONTRACT: &str = v0_2::CONTRACT;
/// The package the contract versions apply to.
const PACKAGE: &str = "sando:gate";

/// The contract versions this host serves, each with its own bindings and
/// conversions (`v0_1/`, `v0_2/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    V0_1,
    V0_2,
}

impl Contract {
    pub const ALL: [Contract; 2] = [Contract::V0_1, Contract::V0_2];

    pub fn version(self) -> &'static str {
        match self {
            Contract::V0_1 => v0_1::CONTRACT,
            Contract::V0_2 => v0_2::CONTRACT,
        }
    }

    /// The served contract a component's `sando:gate` version belongs to
    /// (semver: before 1.0, the same minor; a patch never changes a type).
    fn of(version: &str) -> Option<Contract> {
        let found = semver::Version::parse(version).ok()?;
        Contract::ALL.into_iter().find(|c| {
            let served = semver::Version::parse(c.version()).expect("contract versions are semver");
            found.major == served.major && found.minor == served.minor && found <= served
        })
    }
}

/// sha256 of a component's bytes, lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest(String);

impl Digest {
    pub fn of(bytes: &[u8]) -> Self {
        let hash = Sha256::digest(bytes);
        Self(hash.iter().map(|b| format!("{b:02x}")).collect())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a file could not become a usable gate component.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly file (no `\\0asm` header)")]
    NotWasm,
    #[error("a core WebAssembly module, not a component (build with `--target wasm32-wasip2`)")]
    CoreModule,
    #[error("not a valid component: {0}")]
    Invalid(String),
    #[error(
        "built against gate contract {found}, but this Sando speaks {expected} (and still serves sando:gate@0.1)"
    )]
    ContractMismatch { expected: String, found: String },
    #[error("does not export `{0}`: it is not a gate component")]
    MissingExport(String),
    #[error("imports `{0}`, which the sandbox does not provide")]
    UnsupportedImport(String),
    #[error("faulted while reporting its gate kind: {0}")]
    Fault(ComponentFault),
}

impl LoadError {
    /// The typed outcome a gate run gets when its component cannot load.
    pub fn fault(&self) -> ComponentFault {
        match self {
            LoadError::ContractMismatch { expected, found } => ComponentFault::ContractMismatch {
                expected: expected.clone(),
                found: found.clone(),
            },
            LoadError::Fault(fault) => fault.clone(),
            other => ComponentFault::Invalid { message: other.to_string() },
        }
    }
}

/// What a store carries: an empty WASI context (no preopens, env, network,
/// args), the memory limiter, and the runner's environment — absent while
/// classifying, which is what makes the classifier pure.
struct State {
    wasi: WasiCtx,
    /// What the guest wrote to stderr (a panic message), bounded; shown in
    /// trap faults so a gate author sees why their component trapped.
    stderr: MemoryOutputPipe,
    table: ResourceTable,
    limiter: MemoryLimiter,
    runner: Option<RunnerEnv>,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

struct MemoryLimiter {
    cap: usize,
    peak: usize,
    denied: bool,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.denied = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// What one call cost, for provenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub fuel: u64,
    pub peak_memory_bytes: u64,
}

/// A classification and what it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    pub status: GateStatus,
    pub usage: Usage,
}

/// The engine and linker every gate component runs in.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<State>,
    limits: Limits,
    cache: Option<ComponentCache>,
}

impl Sandbox {
    pub fn new(limits: Limits, cache: Option<ComponentCache>) -> wasmtime::Result<Self> {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(64)
            .total_core_instances(512)
            .total_memories(128)
            .total_tables(256)
            .max_memory_size(usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX))
            // Reset a freed slot by zeroing rather than unmapping, so the next
            // call does not fault its working set back in page by page.
            .linear_memory_keep_resident(8 << 20)
            .table_keep_resident(64 << 10);
        let mut config = Config::new();
        config.consume_fuel(true).allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        deny_sleeping(&mut linker)?;
        v0_1::wit_host::add_to_linker::<State, HasSelf<State>>(&mut linker, |state| state)?;
        v0_2::wit_host::add_to_linker::<State, HasSelf<State>>(&mut linker, |state| state)?;
        Ok(Self { engine, linker, limits, cache })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Validates and compiles (or fetches from the cache) a gate component.
    pub fn load(&self, bytes: &[u8]) -> Result<GateComponent, LoadError> {
        check_header(bytes)?;
        let digest = Digest::of(bytes);
        let (component, from_cache) =
            match self.cache.as_ref().and_then(|c| c.get(&self.engine, &digest)) {
                Some(component) => (component, true),
                None => {
                    let component = Component::new(&self.engine, bytes)
                        .map_err(|e| LoadError::Invalid(root_cause(&e)))?;
                    if let Some(cache) = &self.cache {
                        cache.put(&self.engine, &digest, &component);
                    }
                    (component, false)
                }
            };
        let exports = check_contract(&self.engine, &component)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Invalid(root_cause(&e)))?;
        let mut gate =
            GateComponent { kind: GateKind::CargoTest, digest, from_cache, pre, exports };
        gate.kind = gate.call_kind(self).map_err(LoadError::Fault)?;
        Ok(gate)
    }

    fn store(&self, runner: Option<RunnerEnv>) -> Store<State> {
        let stderr = MemoryOutputPipe::new(GUEST_STDERR_CAP);
        let state = State {
            // The same clocks and randomness on every call, so a verdict a
            // shadow test saw is the verdict the component gives forever.
            wasi: WasiCtx::builder()
                .stderr(stderr.clone())
                .wall_clock(FixedWallClock)
                .monotonic_clock(FixedMonotonicClock)
                .secure_random(<rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0))
                .insecure_random(<rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0))
                .insecure_random_seed(0)
                .build(),
            stderr,
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                cap: usize::try_from(self.limits.memory_bytes).unwrap_or(usize::MAX),
                peak: 0,
                denied: false,
            },
            runner,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.set_fuel(self.limits.fuel).expect("fuel is enabled in the engine config");
        store
    }
}

/// The wall clock a component sees: always 2026-01-01T00:00:00Z. Time a
/// gate needs (burn-in) comes from the host's own imports.
struct FixedWallClock;

impl wasmtime_wasi::HostWallClock for FixedWallClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }

    fn now(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1_767_225_600)
    }
}

/// The monotonic clock a component sees: it never advances.
struct FixedMonotonicClock;

impl wasmtime_wasi::HostMonotonicClock for FixedMonotonicClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        0
    }
}

/// A component may not sleep: a sleep spends no fuel, so nothing else would
/// bound it. Asking for a clock pollable traps with `capability_denied`.
fn deny_sleeping(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    use wasmtime::component::Resource;
    use wasmtime_wasi::p2::DynPollable;
    linker.allow_shadowing(true);
    let mut clock = linker.instance("wasi:clocks/monotonic-clock@0.2.12")?;
    let denied = |what: &str| {
        wasmtime::Error::new(runner_host::Denied(format!(
            "wasi:clocks/monotonic-clock.{what} (a gate component may not sleep)"
        )))
    };
    clock.func_wrap(
        "subscribe-duration",
        move |_store, (_duration,): (u64,)| -> wasmtime::Result<(Resource<DynPollable>,)> {
            Err(denied("subscribe-duration"))
        },
    )?;
    clock.func_wrap(
        "subscribe-instant",
        move |_store, (_when,): (u64,)| -> wasmtime::Result<(Resource<DynPollable>,)> {
            Err(denied("subscribe-instant"))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    const MAGIC: &[u8] = b"\0asm";
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(LoadError::NotWasm);
    }
    // Core modules have version 1 and layer 0; components set layer 1.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(LoadError::CoreModule);
    }
    Ok(())
}

/// The export indices a gate component must provide.
struct Exports {
    /// The contract the component was built against.
    contract: Contract,
    /// Its exact `sando:gate` version, for provenance.
    version: String,
    kind: ComponentExportIndex,
    classify: ComponentExportIndex,
    run: Option<ComponentExportIndex>,
}

/// Splits `sando:gate/classifier@0.1.0` into interface and version.
fn contract_name(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(PACKAGE)?.strip_prefix('/')?;
    rest.split_once('@')
}

/// Checks that every `sando:gate` import and export names one contract this
/// host serves (the same one throughout), then finds the classifier's
/// functions and the runner's.
fn check_contract(engine: &Engine, component: &Component) -> Result<Exports, LoadError> {
    let ty = component.component_type();
    let mismatch = |found: &str| LoadError::ContractMismatch {
        expected: format!("{PACKAGE}@{CONTRACT}"),
        found: format!("{PACKAGE}@{found}"),
    };
    let mut seen: Option<(Contract, String)> = None;
    let mut check = |version: &str| {
        let contract = Contract::of(version).ok_or_else(|| mismatch(version))?;
        match &seen {
            Some((first, _)) if *first != contract => Err(mismatch(version)),
            Some(_) => Ok(()),
            None => {
                seen = Some((contract, version.to_owned()));
                Ok(())
            }
        }
    };
    let mut names: Vec<String> = Vec::new();
    for (name, _) in ty.imports(engine) {
        if let Some((_, version)) = contract_name(name) {
            check(version)?;
        } else if !name.starts_with("wasi:") {
            return Err(LoadError::UnsupportedImport(name.to_owned()));
        }
    }
    for (name, item) in ty.exports(engine) {
        if let Some((_, version)) = contract_name(name) {
            check(version)?;
            if matches!(item.ty, ComponentItem::ComponentInstance(_)) {
                names.push(name.to_owned());
            }
        }
    }
    let find = |interface: &str| {
        names.iter().find(|n| contract_name(n).is_some_and(|(i, _)| i == interface))
    };
    let classifier_name = find("classifier")
        .ok_or_else(|| LoadError::MissingExport(format!("{PACKAGE}/classifier")))?;
    let classifier = component
        .get_export_index(None, classifier_name)
        .ok_or_else(|| LoadError::MissingExport(classifier_name.clone()))?;
    let func = |name: &str| {
        component
            .get_export_index(Some(&classifier), name)
            .ok_or_else(|| LoadError::MissingExport(format!("{classifier_name}#{name}")))
    };
    let run = find("runner").and_then(|runner_name| {
        let runner = component.get_export_index(None, runner_name)?;
        component.get_export_index(Some(&runner), "run")
    });
    let (contract, version) = seen.expect("a classifier export names a contract version");
    Ok(Exports { contract, version, kind: func("kind")?, classify: func("classify")?, run })
}

/// A loaded, validated gate component, ready to instantiate per call.
pub struct GateComponent {
    kind: GateKind,
    digest: Digest,
    from_cache: bool,
    pre: InstancePre<State>,
    exports: Exports,
}

impl GateComponent {
    /// The exact `sando:gate` version the component was built against.
    pub fn contract(&self) -> &str {
        &self.exports.version
    }

    /// Which served contract that is.
    pub fn speaks(&self) -> Contract {
        self.exports.contract
    }

    /// The gate kind the component says it serves.
    pub fn kind(&self) -> GateKind {
        self.kind
    }

    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Whether the compiled code came from the on-disk cache.
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }

    pub fn has_runner(&self) -> bool {
        self.exports.run.is_some()
    }

    fn call_kind(&self, sandbox: &Sandbox) -> Result<GateKind, ComponentFault> {
        let mut store = sandbox.store(None);
        let result = (|| {
            let instance = self.pre.instantiate(&mut store)?;
            Ok(match self.exports.contract {
                Contract::V0_1 => {
                    let func = instance.get_typed_func::<(), (v0_1::types::GateKind,)>(
                        &mut store,
                        &self.exports.kind,
                    )?;
                    v0_1::from_guest::gate_kind(func.call(&mut store, ())?.0)
                }
                Contract::V0_2 => {
                    let func = instance.get_typed_func::<(), (v0_2::types::GateKind,)>(
                        &mut store,
                        &self.exports.kind,
                    )?;
                    v0_2::from_guest::gate_kind(func.call(&mut store, ())?.0)
                }
            })
        })();
        result.map_err(|e| fault(&store, sandbox, &e))
    }

    /// Classifies one captured output. Never fails: a misbehaving component
    /// becomes `failed(component_fault)`, and the next call starts clean.
    pub fn classify(
        &self,
        sandbox: &Sandbox,
        kind: GateKind,
        output: &RawOutput,
    ) -> Classification {
        if kind != self.kind {
            return Classification {
                status: GateStatus::failed(GateFailure::ComponentFault {
                    fault: ComponentFault::WrongGateKind { expected: kind, found: self.kind },
                }),
                usage: Usage { fuel: 0, peak_memory_bytes: 0 },
            };
        }
        let mut store = sandbox.store(None);
        let result = (|| {
            let instance = self.pre.instantiate(&mut store)?;
            Ok(match self.exports.contract {
                Contract::V0_1 => {
                    use v0_1::{from_guest, to_guest, types as wit};
                    let func = instance.get_typed_func::<
                        (wit::GateKind, wit::RawOutputParam<'_>),
                        (wit::GateStatus,),
                    >(&mut store, &self.exports.classify)?;
                    let args = (to_guest::gate_kind(kind), to_guest::raw_output(output));
                    from_guest::gate_status(func.call(&mut store, args)?.0)
                }
                Contract::V0_2 => {
                    use v0_2::{from_guest, to_guest, types as wit};
                    let func = instance.get_typed_func::<
                        (wit::GateKind, wit::RawOutputParam<'_>),
                        (wit::GateStatus,),
                    >(&mut store, &self.exports.classify)?;
                    let args = (to_guest::gate_kind(kind), to_guest::raw_output(output));
                    from_guest::gate_status(func.call(&mut store, args)?.0)
                }
            })
        })();
        finish(store, sandbox, result)
    }

    /// Runs the gate's runner with the given environment, its only way to
    /// reach the world. A 0.2 runner's evidence is judged by `classifier`
    /// (the classifier in service for the kind); a 0.1 runner is a whole
    /// gate and its status stands. Components without a runner fail typed.
    /// The usage is the runner's and the classifier's together.
    pub fn run(
        &self,
        sandbox: &Sandbox,
        env: RunnerEnv,
        classifier: &GateComponent,
    ) -> (Classification, RunnerEnv) {
        let mut store = sandbox.store(Some(env));
        let result = match &self.exports.run {
            None => Err(wasmtime::Error::new(runner_host::Denied(format!(
                "{PACKAGE}/runner (the component exports only a classifier)"
            )))),
            Some(run) => (|| {
                let instance = self.pre.instantiate(&mut store)?;
                Ok(match self.exports.contract {
                    Contract::V0_1 => {
                        let func = instance
                            .get_typed_func::<(), (v0_1::types::GateStatus,)>(&mut store, run)?;
                        v0_2::from_guest::Verdict::Decided(v0_1::from_guest::gate_status(
                            func.call(&mut store, ())?.0,
                        ))
                    }
                    Contract::V0_2 => {
                        let func = instance
                            .get_typed_func::<(), (v0_2::runner::Verdict,)>(&mut store, run)?;
                        v0_2::from_guest::verdict(func.call(&mut store, ())?.0)
                    }
                })
            })(),
        };
        let result = result.map_err(|e| fault(&store, sandbox, &e));
        let mut usage = usage(&store, sandbox);
        let env = store.into_data().runner.expect("the runner env stays in the store");
        let status = match result {
            Err(fault) => GateStatus::failed(GateFailure::ComponentFault { fault }),
            Ok(v0_2::from_guest::Verdict::Decided(status)) => self.decided(env.gate(), status),
            Ok(v0_2::from_guest::Verdict::Judge { restored_backup }) => {
                match judged(sandbox, &env, classifier, restored_backup) {
                    Ok(judged) => {
                        usage.fuel = usage.fuel.saturating_add(judged.usage.fuel);
                        usage.peak_memory_bytes =
                            usage.peak_memory_bytes.max(judged.usage.peak_memory_bytes);
                        judged.status
                    }
                    Err(fault) => GateStatus::failed(GateFailure::ComponentFault { fault }),
                }
            }
        };
        (Classification { status, usage }, env)
    }

    /// A status the runner reached on its own. A 0.2 runner may not pass a
    /// gate whose pass comes from a process: only the classifier in service
    /// says a test run, a migration or a boot went well.
    fn decided(&self, kind: GateKind, status: GateStatus) -> GateStatus {
        let judged_kind =
            matches!(kind, GateKind::CargoTest | GateKind::MigrationDryRun | GateKind::BootSmoke);
        if self.exports.contract == Contract::V0_2
            && judged_kind
            && matches!(status, GateStatus::Passed { .. })
        {
            return GateStatus::failed(GateFailure::ComponentFault {
                fault: ComponentFault::CapabilityDenied {
                    capability: format!(
                        "deciding a {kind} pass without the classifier's judgement"
                    ),
                },
            });
        }
        status
    }
}

/// The classifier's judgement of the last process a 0.2 runner spawned,
/// with the backup the runner restored put in a `migrated` pass.
fn judged(
    sandbox: &Sandbox,
    env: &RunnerEnv,
    classifier: &GateComponent,
    restored_backup: Option<i64>,
) -> Result<Classification, ComponentFault> {
    let denied = |what: &str| ComponentFault::CapabilityDenied { capability: what.to_owned() };
    let Some(output) = env.spawned.last() else {
        return Err(denied("judge (the runner spawned no process to judge)"));
    };
    let given = env.latest_backup.as_ref().map(|b| b.id);
    if restored_backup.is_some() && restored_backup != given {
        return Err(denied("judge with a backup the host did not give the runner"));
    }
    let mut judged = classifier.classify(sandbox, env.gate(), output);
    if let GateStatus::Passed { note: crate::domain::PassNote::Migrated { backup, .. } } =
        &mut judged.status
        && backup.is_none()
    {
        *backup = restored_backup;
    }
    Ok(judged)
}

fn usage(store: &Store<State>, sandbox: &Sandbox) -> Usage {
    let left = store.get_fuel().unwrap_or(0);
    Usage {
        fuel: sandbox.limits.fuel.saturating_sub(left),
        peak_memory_bytes: store.data().limiter.peak as u64,
    }
}

fn finish(
    store: Store<State>,
    sandbox: &Sandbox,
    result: wasmtime::Result<GateStatus>,
) -> Classification {
    let status = match result {
        Ok(status) => status,
        Err(e) => {
            GateStatus::failed(GateFailure::ComponentFault { fault: fault(&store, sandbox, &e) })
        }
    };
    Classification { status, usage: usage(&store, sandbox) }
}

/// Names what went wrong in a call, most specific cause first.
fn fault(store: &Store<State>, sandbox: &Sandbox, error: &wasmtime::Error) -> ComponentFault {
    if let Some(denied) = error.downcast_ref::<runner_host::Denied>() {
        return ComponentFault::CapabilityDenied { capability: denied.0.clone() };
    }
    if store.data().limiter.denied {
        return ComponentFault::MemoryExhausted { limit_bytes: sandbox.limits.memory_bytes };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => ComponentFault::FuelExhausted { budget: sandbox.limits.fuel },
        Some(trap) => ComponentFault::Trap { message: with_guest_stderr(store, trap.to_string()) },
        None => ComponentFault::Trap { message: with_guest_stderr(store, root_cause(error)) },
    }
}

/// Appends the first lines the guest wrote to stderr (a Rust panic's
/// location and message) to a trap's description.
fn with_guest_stderr(store: &Store<State>, message: String) -> String {
    let bytes = store.data().stderr.contents();
    let text = String::from_utf8_lossy(&bytes);
    let said: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).take(2).collect();
    if said.is_empty() { message } else { format!("{message}; guest stderr: {}", said.join(" ")) }
}

fn root_cause(error: &wasmtime::Error) -> String {
    let mut message = error.to_string();
    if let Some(source) = error.chain().last() {
        let source = source.to_string();
        if source != message {
            message = format!("{message}: {source}");
        }
    }
    // The parser quotes what it read: names with NULs, several lines.
    crate::text::one_line(&message)
}

/// Where the gate components shipped with Sando are found: `$SANDO_GATES_DIR`
/// if set, else `gates/` next to the `sando` executable (`./x build` puts
/// them in `target/release/gates/`; an install copies that directory).
pub fn shipped_component(kind: GateKind) -> Result<PathBuf, PathBuf> {
    let dir = match std::env::var_os("SANDO_GATES_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("gates")))
            .unwrap_or_else(|| PathBuf::from("gates")),
    };
    let path = dir.join(format!("{kind}.wasm"));
    if path.is_file() { Ok(path) } else { Err(path) }
}
