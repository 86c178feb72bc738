//! `schema:` on the Sentinel exporter. A Log Analytics table has fixed, typed columns, declared
//! by the data collection rule's stream, so each shape has its own custom table and DCR stream
//! in the shipped template `examples/sentinel/azuredeploy.json` ([`SHAPE_TABLES`]), and each
//! event is written as one record of exactly that stream's columns:
//!
//! - `native`: `SiemrelayEvents_CL`, the default columns ([`super::DEFAULT_COLUMNS`]) or the
//!   configured `columns`.
//! - `flat`: `SiemrelayFlat_CL`: the flat shape's well-known fields as columns of the same
//!   names, the seed products' common attributes ([`FLAT_ATTRIBUTE_COLUMNS`]) as columns of
//!   their own when the value has the column's type, and every other attribute in the dynamic
//!   `attributes` column (a table cannot grow a column per sender field).
//! - `ecs`: `SiemrelayEcs_CL`: one column per top-level ECS field (`message`, and the objects
//!   `event`, `user`, `source`, … as `dynamic`: Log Analytics names have no dots; query
//!   `event.action` as `tostring(event.action)`); `@timestamp` is `EventTime`.
//! - `ocsf`: `SiemrelayOcsf_CL`: one column per top-level OCSF attribute (`class_uid`,
//!   `severity_id`, `time`, … typed; `metadata`, `finding_info`, `unmapped`, … `dynamic`).
//!
//! Every record starts with `TimeGenerated` and `EventTime` (the event's time; Log Analytics
//! replaces a `TimeGenerated` more than 2 days old with the receive time). A signed event
//! carries its native form as the other exporters do: `signed_json` (flat),
//! `siemrelay.signed_json` (ecs), `unmapped.signed_json` (ocsf).

use super::columns::{ColumnType, Columns, DEFAULT_COLUMNS, azure_time};
use crate::delivery::schema::flat::stays_nested;
use crate::delivery::schema::{SIGNED_JSON, Schema, signed_json};
use serde::ser::{Serialize, SerializeMap, Serializer};
use siemrelay_core::{Event, Value};

/// One shape's custom table and the DCR stream that feeds it.
#[derive(Clone, Copy, Debug)]
pub struct ShapeTable {
    /// The shape.
    pub schema: Schema,
    /// The custom table (`…_CL`).
    pub table: &'static str,
    /// The DCR input stream (`Custom-` and the table name), the default `stream_name`.
    pub stream: &'static str,
    /// Its columns, in the template's order, in parts (`native`: see [`ShapeTable::columns`]).
    columns: &'static [&'static [(&'static str, ColumnType)]],
}

impl ShapeTable {
    /// The columns the template declares for this shape's stream, in order.
    pub fn columns(&self) -> Vec<(&'static str, ColumnType)> {
        match self.schema {
            Schema::Native => DEFAULT_COLUMNS
                .iter()
                .map(|(name, _, kind)| (*name, *kind))
                .collect(),
            _ => self.columns.concat(),
        }
    }
}

use ColumnType::{DateTime, Dynamic, Int, Long, String as Text};

/// Attributes that `flat` writes in a column of their own (when the value has the column's
/// type): the seed products' fields that searches name.
pub const FLAT_ATTRIBUTE_COLUMNS: &[(&str, ColumnType)] = &[
    ("action", Text),
    ("policy_name", Text),
    ("user_email", Text),
    ("user_id", Text),
    ("org_id", Text),
    ("gateway_id", Text),
    ("model", Text),
    ("client_ip", Text),
    ("tags", Dynamic),
    ("actor", Dynamic),
];

/// `flat`: the well-known fields before the attribute columns.
const FLAT_FIELDS: &[(&str, ColumnType)] = &[
    ("TimeGenerated", DateTime),
    ("EventTime", DateTime),
    ("event_id", Text),
    ("timestamp", DateTime),
    ("observed_timestamp", DateTime),
    ("event_type", Text),
    ("severity", Text),
    ("severity_number", Int),
    ("source", Text),
    ("summary", Text),
];

/// `flat`: the columns after the attribute columns.
const FLAT_REST: &[(&str, ColumnType)] = &[
    ("attributes", Dynamic),
    ("resource", Dynamic),
    ("signature", Dynamic),
    ("signed_json", Text),
];

const ECS_COLUMNS: &[(&str, ColumnType)] = &[
    ("TimeGenerated", DateTime),
    ("EventTime", DateTime),
    ("ecs", Dynamic),
    ("event", Dynamic),
    ("log", Dynamic),
    ("message", Text),
    ("user", Dynamic),
    ("source", Dynamic),
    ("destination", Dynamic),
    ("host", Dynamic),
    ("observer", Dynamic),
    ("organization", Dynamic),
    ("rule", Dynamic),
    ("user_agent", Dynamic),
    ("labels", Dynamic),
    ("siemrelay", Dynamic),
];

const OCSF_COLUMNS: &[(&str, ColumnType)] = &[
    ("TimeGenerated", DateTime),
    ("EventTime", DateTime),
    ("class_uid", Int),
    ("class_name", Text),
    ("category_uid", Int),
    ("category_name", Text),
    ("activity_id", Int),
    ("activity_name", Text),
    ("type_uid", Long),
    ("severity_id", Int),
    ("severity", Text),
    ("time", Long),
    ("message", Text),
    ("metadata", Dynamic),
    ("finding_info", Dynamic),
    ("status_id", Int),
    ("status", Text),
    ("status_detail", Text),
    ("user", Dynamic),
    ("service", Dynamic),
    ("src_endpoint", Dynamic),
    ("unmapped", Dynamic),
];

/// The shipped template's table and stream of each shape, in [`Schema::ALL`] order.
pub const SHAPE_TABLES: [ShapeTable; 4] = [
    ShapeTable {
        schema: Schema::Native,
        table: "SiemrelayEvents_CL",
        stream: "Custom-SiemrelayEvents_CL",
        columns: &[],
    },
    ShapeTable {
        schema: Schema::Flat,
        table: "SiemrelayFlat_CL",
        stream: "Custom-SiemrelayFlat_CL",
        columns: &[FLAT_FIELDS, FLAT_ATTRIBUTE_COLUMNS, FLAT_REST],
    },
    ShapeTable {
        schema: Schema::Ecs,
        table: "SiemrelayEcs_CL",
        stream: "Custom-SiemrelayEcs_CL",
        columns: &[ECS_COLUMNS],
    },
    ShapeTable {
        schema: Schema::Ocsf,
        table: "SiemrelayOcsf_CL",
        stream: "Custom-SiemrelayOcsf_CL",
        columns: &[OCSF_COLUMNS],
    },
];

/// The shipped table and stream of `schema`.
pub fn shape_table(schema: Schema) -> &'static ShapeTable {
    SHAPE_TABLES
        .iter()
        .find(|t| t.schema == schema)
        .unwrap_or(&SHAPE_TABLES[0])
}

/// True when `value` can be stored in a column of type `kind` as it is.
fn fits(value: &Value, kind: ColumnType) -> bool {
    match kind {
        ColumnType::String | ColumnType::DateTime => value.is_string(),
        ColumnType::Int => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        ColumnType::Long => value.is_i64(),
        ColumnType::Dynamic => !value.is_null(),
    }
}

/// The column `flat` gives attribute `key` with this value, if any.
fn flat_column(key: &str, value: &Value) -> Option<ColumnType> {
    FLAT_ATTRIBUTE_COLUMNS
        .iter()
        .find(|(name, _)| *name == key)
        .map(|(_, kind)| *kind)
        .filter(|kind| fits(value, *kind) && !stays_nested(key))
}

/// How the exporter writes each event: the record of its shape's columns.
#[derive(Clone, Debug)]
pub enum RecordShape {
    /// `native`: the default or configured columns.
    Native(Columns),
    /// `flat`, `ecs` or `ocsf`: the columns of [`shape_table`].
    Reshaped(Schema),
}

impl RecordShape {
    /// The record writer of `schema` (`columns` is used by `native` only).
    pub fn new(schema: Schema, columns: Columns) -> RecordShape {
        match schema {
            Schema::Native => RecordShape::Native(columns),
            other => RecordShape::Reshaped(other),
        }
    }

    /// Appends one event's record (a JSON object) to `out`.
    pub fn write_record(&self, event: &Event, out: &mut Vec<u8>) -> Result<(), String> {
        match self {
            RecordShape::Native(columns) => columns.write_record(event, out),
            RecordShape::Reshaped(schema) => {
                serde_json::to_writer(out, &ShapedRecord(event, *schema))
                    .map_err(|e| format!("cannot encode the record: {e}"))
            }
        }
    }
}

struct ShapedRecord<'a>(&'a Event, Schema);

impl Serialize for ShapedRecord<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let ShapedRecord(e, schema) = *self;
        let mut map = serializer.serialize_map(None)?;
        let time = azure_time(e.timestamp);
        map.serialize_entry("TimeGenerated", &time)?;
        map.serialize_entry("EventTime", &time)?;
        match schema {
            Schema::Flat => flat_members(e, &time, &mut map)?,
            // `@timestamp` is EventTime (a column name has no `@`).
            _ => schema.write_members(e, &mut map, &["@timestamp"])?,
        }
        map.end()
    }
}

/// The attributes without a column of their own, for the `attributes` column.
struct OtherAttributes<'a>(&'a Event);

impl Serialize for OtherAttributes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in &self.0.attributes {
            if flat_column(key, value).is_none() {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

fn flat_members<M: SerializeMap>(e: &Event, time: &str, map: &mut M) -> Result<(), M::Error> {
    map.serialize_entry("event_id", &e.event_id)?;
    map.serialize_entry("timestamp", time)?;
    map.serialize_entry("observed_timestamp", &azure_time(e.observed_timestamp))?;
    map.serialize_entry("event_type", &e.event_type)?;
    map.serialize_entry("severity", &e.severity.text)?;
    map.serialize_entry("severity_number", &e.severity.number)?;
    if let Some(source) = &e.source {
        map.serialize_entry("source", source)?;
    }
    if let Some(summary) = &e.summary {
        map.serialize_entry("summary", summary)?;
    }
    let mut others = false;
    for (key, value) in &e.attributes {
        if flat_column(key, value).is_some() {
            map.serialize_entry(key, value)?;
        } else {
            others = true;
        }
    }
    if others {
        map.serialize_entry("attributes", &OtherAttributes(e))?;
    }
    if !e.resource.is_empty() {
        map.serialize_entry("resource", &e.resource)?;
    }
    if let Some(signature) = &e.signature {
        map.serialize_entry("signature", signature)?;
    }
    if let Some(native) = signed_json(e) {
        map.serialize_entry(SIGNED_JSON, &native)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
