//! SQLite column forms: string newtypes are TEXT in their `Display` form,
//! row ids are INTEGER, and `GateStatus` (and the build and deploy outcomes) are their JSON, contract 1's form.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Sqlite, Type};

use crate::{
    BackupSource, BuildOutcome, ComponentPart, ComponentState, DeployId, DeployOutcome, GateKind,
    GateRunId, GateStatus, GitSha, LogRef, NodeId, RunState, TierId, Version,
};

macro_rules! text_column {
    ($($ty:ty),*) => {$(
        impl Type<Sqlite> for $ty {
            fn type_info() -> SqliteTypeInfo {
                <String as Type<Sqlite>>::type_info()
            }
            fn compatible(ty: &SqliteTypeInfo) -> bool {
                <String as Type<Sqlite>>::compatible(ty)
            }
        }

        impl<'q> Encode<'q, Sqlite> for $ty {
            fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
                <String as Encode<'q, Sqlite>>::encode(self.to_string(), buf)
            }
        }

        impl<'r> Decode<'r, Sqlite> for $ty {
            fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&str as Decode<'r, Sqlite>>::decode(value)?;
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

macro_rules! integer_column {
    ($($ty:ty),*) => {$(
        impl Type<Sqlite> for $ty {
            fn type_info() -> SqliteTypeInfo {
                <i64 as Type<Sqlite>>::type_info()
            }
            fn compatible(ty: &SqliteTypeInfo) -> bool {
                <i64 as Type<Sqlite>>::compatible(ty)
            }
        }

        impl<'q> Encode<'q, Sqlite> for $ty {
            fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
                <i64 as Encode<'q, Sqlite>>::encode(self.get(), buf)
            }
        }

        impl<'r> Decode<'r, Sqlite> for $ty {
            fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
                Ok(Self::try_from(<i64 as Decode<'r, Sqlite>>::decode(value)?)?)
            }
        }
    )*};
}

integer_column!(GateRunId, DeployId);

macro_rules! json_column {
    ($($ty:ty),*) => {$(
        impl Type<Sqlite> for $ty {
            fn type_info() -> SqliteTypeInfo {
                <String as Type<Sqlite>>::type_info()
            }
            fn compatible(ty: &SqliteTypeInfo) -> bool {
                <String as Type<Sqlite>>::compatible(ty)
            }
        }

        impl<'q> Encode<'q, Sqlite> for $ty {
            fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
                <String as Encode<'q, Sqlite>>::encode(serde_json::to_string(self)?, buf)
            }
        }

        impl<'r> Decode<'r, Sqlite> for $ty {
            fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
                Ok(serde_json::from_str(<&str as Decode<'r, Sqlite>>::decode(value)?)?)
            }
        }
    )*};
}

json_column!(GateStatus, BuildOutcome, DeployOutcome);
