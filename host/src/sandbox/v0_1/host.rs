//! The `host` imports of contract 0.1, over the version-independent ones in `runner_host.rs`.

use super::{to_guest, types as wit_types, wit_host as wit};
use crate::sandbox::State;

impl wit_types::Host for State {}

impl wit::Host for State {
    fn context(&mut self) -> wasmtime::Result<wit::GateContext> {
        let env = self.host_context()?;
        Ok(wit::GateContext {
            tier: env.tier.to_string(),
            version: env.version.to_string(),
            gate: to_guest::gate_kind(env.gate()),
            params: env
                .params
                .pairs()
                .into_iter()
                .map(|(key, value)| wit::Param { key, value })
                .collect(),
        })
    }

    fn spawn(
        &mut self,
        request: wit::SpawnRequest,
    ) -> wasmtime::Result<wit_types::RawOutputResult> {
        let env = request.env.into_iter().map(|p| (p.key, p.value)).collect();
        let output = self.host_spawn(request.program, request.args, env, request.stop_after_ms)?;
        Ok(to_guest::spawned_output(output))
    }

    fn burn_in_clock(&mut self) -> wasmtime::Result<Option<wit::ClockReading>> {
        Ok(self.host_burn_in_clock()?.map(|c| wit::ClockReading {
            started_at: to_guest::datetime(c.started_at),
            now: to_guest::datetime(c.now),
        }))
    }

    fn confirmation(&mut self) -> wasmtime::Result<Option<wit::OperatorConfirmation>> {
        Ok(self
            .host_confirmation()?
            .map(|c| wit::OperatorConfirmation { by: c.by, at: to_guest::datetime(c.at) }))
    }

    fn latest_backup(&mut self) -> wasmtime::Result<Option<wit::Backup>> {
        Ok(self.host_latest_backup()?.map(|b| wit::Backup {
            id: b.id,
            path: b.path,
            fetched_at: to_guest::datetime(b.fetched_at),
        }))
    }
}
