//! PostgreSQL column forms, the same values as on SQLite: string newtypes are `text` in their `Display` form, row ids are `bigint`, and `GateStatus` (and the build and deploy outcomes) are `jsonb` in contract 1's form.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::types::Json;
use sqlx::{Decode, Encode, Postgres, Type};

use crate::{
    BackupSource, BuildOutcome, ComponentPart, ComponentState, DeployId, DeployOutcome, GateKind,
    GateRunId, GateStatus, GitSha, LogRef, NodeId, RunState, TierId, Version,
};

macro_rules! text_column {
    ($($ty:ty),*) => {$(
        impl Type<Postgres> for $ty {
            fn type_info() -> PgTypeInfo {
                <String as Type<Postgres>>::type_info()
            }
            fn compatible(ty: &PgTypeInfo) -> bool {
                <String as Type<Postgres>>::compatible(ty)
            }
        }

        impl Encode<'_, Postgres> for $ty {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <String as Encode<'_, Postgres>>::encode(self.to_string(), buf)
            }
        }

        impl<'r> Decode<'r, Postgres> for $ty {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&str as Decode<'r, Postgres>>::decode(value)?;
                Ok(text.parse()?)
            }
        }
    )*};
}

text_column!(
    TierId,
    NodeId,
    Version,
    GitSha,
    GateKind,
    LogRef,
    RunState,
    ComponentState,
    ComponentPart,
    BackupSource
);

macro_rules! bigint_column {
    ($($ty:ty),*) => {$(
        impl Type<Postgres> for $ty {
            fn type_info() -> PgTypeInfo {
                <i64 as Type<Postgres>>::type_info()
            }
            fn compatible(ty: &PgTypeInfo) -> bool {
                <i64 as Type<Postgres>>::compatible(ty)
            }
        }

        impl Encode<'_, Postgres> for $ty {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <i64 as Encode<'_, Postgres>>::encode(self.get(), buf)
            }
        }

        impl<'r> Decode<'r, Postgres> for $ty {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                Ok(Self::try_from(<i64 as Decode<'r, Postgres>>::decode(value)?)?)
            }
        }
    )*};
}

bigint_column!(GateRunId, DeployId);

macro_rules! jsonb_column {
    ($($ty:ty),*) => {$(
        impl Type<Postgres> for $ty {
            fn type_info() -> PgTypeInfo {
                <Json<()> as Type<Postgres>>::type_info()
            }
            fn compatible(ty: &PgTypeInfo) -> bool {
                <Json<()> as Type<Postgres>>::compatible(ty)
            }
        }

        impl Encode<'_, Postgres> for $ty {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                let value = without_nul(serde_json::to_value(self)?);
                <Json<serde_json::Value> as Encode<'_, Postgres>>::encode(Json(value), buf)
            }
        }

        impl<'r> Decode<'r, Postgres> for $ty {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                Ok(<Json<Self> as Decode<'r, Postgres>>::decode(value)?.0)
            }
        }
    )*};
}

/// `value` with every U+0000 in its strings made U+FFFD: `jsonb` cannot
/// hold one, and an outcome quoting what code under test printed (a test
/// named with a NUL) must still be recorded, not fail the write.
fn without_nul(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains('\0') => Value::String(s.replace('\0', "\u{FFFD}")),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nul).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter().map(|(k, v)| (k.replace('\0', "\u{FFFD}"), without_nul(v))).collect(),
        ),
        other => other,
    }
}

jsonb_column!(GateStatus, BuildOutcome, DeployOutcome);
