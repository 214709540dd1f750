//! Query results as text: an aligned table, CSV or a JSON array.
//!
//! Binary columns (HdrHistogram encodings) are written as hex strings in CSV and JSON, the form
//! other tools can read back; timestamps as RFC 3339 UTC.

use std::io::Write;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use crate::sql::QueryResult;

/// Text formats for query results (the CLI's `--format`; HTTP uses CSV and JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// A JSON array of row objects.
    Json,
}

/// Writes `result` in `format`.
pub fn write_result(
    result: &QueryResult,
    format: Format,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match format {
        Format::Table => {
            let table = arrow::util::pretty::pretty_format_batches_with_schema(
                result.schema.clone(),
                &result.batches,
            )?;
            writeln!(out, "{table}")?;
        }
        Format::Csv => {
            let batches = hex_binary(result)?;
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            if batches.is_empty() {
                let names: Vec<&str> = result
                    .schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                drop(w);
                writeln!(out, "{}", names.join(","))?;
            } else {
                for b in &batches {
                    w.write(b)?;
                }
            }
        }
        Format::Json => {
            let batches = hex_binary(result)?;
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            // Explicit nulls: a consumer sees every column in every row.
            let mut w = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow::json::writer::JsonArray>(&mut *out);
            w.write_batches(&refs)?;
            w.finish()?;
            writeln!(out)?;
        }
    }
    Ok(())
}

fn hex_binary(result: &QueryResult) -> anyhow::Result<Vec<RecordBatch>> {
    if !result
        .schema
        .fields()
        .iter()
        .any(|f| f.data_type() == &DataType::Binary)
    {
        return Ok(result.batches.clone());
    }
    let schema = Arc::new(Schema::new(
        result
            .schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Binary => Field::new(f.name(), DataType::Utf8, f.is_nullable()),
                _ => f.as_ref().clone(),
            })
            .collect::<Vec<_>>(),
    ));
    let mut out = Vec::new();
    for b in &result.batches {
        let cols: Vec<ArrayRef> = b
            .columns()
            .iter()
            .map(|c| match c.data_type() {
                DataType::Binary => {
                    let hex: StringArray = c
                        .as_binary::<i32>()
                        .iter()
                        .map(|v| {
                            v.map(|v| v.iter().map(|x| format!("{x:02x}")).collect::<String>())
                        })
                        .collect();
                    Arc::new(hex) as ArrayRef
                }
                _ => c.clone(),
            })
            .collect();
        out.push(RecordBatch::try_new(schema.clone(), cols)?);
    }
    Ok(out)
}
