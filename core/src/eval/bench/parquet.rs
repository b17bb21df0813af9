//! Reading the parquet files HF `datasets` writes (BLINK, MMStar) into plain rows.
//!
//! `datasets` stores an `Image` feature as `struct<bytes: binary, path: string>`, a
//! `Sequence(Value("string"))` as `list<string>`, strings as `string` / `large_string`; those
//! are the cell kinds here. Anything else becomes [`Cell::Other`] with its arrow type, so a
//! reader can say which column had an unexpected type.

use std::collections::HashMap;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::bad;
use crate::error::{LavitError, Result};

/// One value of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Str(String),
    Int(i64),
    Float(f64),
    Bytes(Vec<u8>),
    /// An HF `Image` cell.
    Image {
        bytes: Option<Vec<u8>>,
        path: Option<String>,
    },
    List(Vec<Cell>),
    /// A type the readers do not use (its arrow type, for errors).
    Other(String),
}

impl Cell {
    /// Text of a string or number cell.
    pub fn text(&self) -> Option<String> {
        match self {
            Cell::Str(s) => Some(s.clone()),
            Cell::Int(i) => Some(i.to_string()),
            Cell::Float(f) => Some(f.to_string()),
            _ => None,
        }
    }
}

/// A row: column name → cell.
pub type Row = HashMap<String, Cell>;

/// Reads every row of a parquet file.
pub fn read_rows(path: &Path) -> Result<Vec<Row>> {
    let file = std::fs::File::open(path).map_err(|e| LavitError::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| bad(path, format!("not a readable parquet file ({e})")))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| bad(path, format!("corrupt parquet data ({e})")))?;
        let schema = batch.schema();
        for r in 0..batch.num_rows() {
            let row = schema
                .fields()
                .iter()
                .zip(batch.columns())
                .map(|(f, col)| (f.name().clone(), cell(col, r)))
                .collect();
            rows.push(row);
        }
    }
    Ok(rows)
}

fn cell(col: &ArrayRef, i: usize) -> Cell {
    if col.is_null(i) {
        return Cell::Null;
    }
    match col.data_type() {
        DataType::Utf8 => Cell::Str(col.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Cell::Str(col.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => Cell::Str(col.as_string_view().value(i).to_string()),
        DataType::Binary => Cell::Bytes(col.as_binary::<i32>().value(i).to_vec()),
        DataType::LargeBinary => Cell::Bytes(col.as_binary::<i64>().value(i).to_vec()),
        DataType::BinaryView => Cell::Bytes(col.as_binary_view().value(i).to_vec()),
        DataType::Int8 => Cell::Int(col.as_primitive::<Int8Type>().value(i) as i64),
        DataType::Int16 => Cell::Int(col.as_primitive::<Int16Type>().value(i) as i64),
        DataType::Int32 => Cell::Int(col.as_primitive::<Int32Type>().value(i) as i64),
        DataType::Int64 => Cell::Int(col.as_primitive::<Int64Type>().value(i)),
        DataType::UInt32 => Cell::Int(col.as_primitive::<UInt32Type>().value(i) as i64),
        DataType::UInt64 => Cell::Int(col.as_primitive::<UInt64Type>().value(i) as i64),
        DataType::Float32 => Cell::Float(col.as_primitive::<Float32Type>().value(i) as f64),
        DataType::Float64 => Cell::Float(col.as_primitive::<Float64Type>().value(i)),
        DataType::List(_) => list(col.as_list::<i32>().value(i)),
        DataType::LargeList(_) => list(col.as_list::<i64>().value(i)),
        DataType::Struct(_) => {
            let s = col.as_struct();
            let bytes = s.column_by_name("bytes").map(|c| cell(c, i));
            let path = s.column_by_name("path").map(|c| cell(c, i));
            match (bytes, path) {
                (None, None) => Cell::Other(format!("{}", col.data_type())),
                (b, p) => Cell::Image {
                    bytes: match b {
                        Some(Cell::Bytes(b)) => Some(b),
                        _ => None,
                    },
                    path: p.and_then(|p| p.text()),
                },
            }
        }
        t => Cell::Other(format!("{t}")),
    }
}

fn list(values: ArrayRef) -> Cell {
    Cell::List((0..values.len()).map(|j| cell(&values, j)).collect())
}

/// Typed access to a row's columns with errors naming file, row and column.
pub struct RowReader<'a> {
    pub path: &'a Path,
    pub index: usize,
    pub row: &'a Row,
}

impl RowReader<'_> {
    fn err(&self, col: &str, msg: impl std::fmt::Display) -> LavitError {
        bad(
            self.path,
            format!("row {}: column `{col}` {msg}", self.index),
        )
    }

    pub fn get(&self, col: &str) -> Option<&Cell> {
        self.row.get(col).filter(|c| **c != Cell::Null)
    }

    /// A string (or number written as text) column.
    pub fn text(&self, col: &str) -> Result<String> {
        match self.row.get(col) {
            None => Err(self.err(col, "is missing")),
            Some(c) => c
                .text()
                .ok_or_else(|| self.err(col, format!("is not text ({c:?})"))),
        }
    }

    /// An image column: the embedded bytes (`struct<bytes, path>` or plain binary).
    pub fn image(&self, col: &str) -> Result<Option<(String, Vec<u8>)>> {
        let name = format!("{}#{}/{col}", self.path.display(), self.index);
        match self.get(col) {
            None
            | Some(Cell::Image {
                bytes: None,
                path: None,
            }) => Ok(None),
            Some(Cell::Image {
                bytes: Some(b),
                path,
            }) => Ok(Some((
                path.as_ref()
                    .map(|p| format!("{name} ({p})"))
                    .unwrap_or(name),
                b.clone(),
            ))),
            Some(Cell::Bytes(b)) => Ok(Some((name, b.clone()))),
            Some(c) => Err(self.err(col, format!("holds no image bytes ({})", short(c)))),
        }
    }

    /// A `list<string>` column.
    pub fn strings(&self, col: &str) -> Result<Vec<String>> {
        match self.row.get(col) {
            None => Err(self.err(col, "is missing")),
            Some(Cell::List(items)) => items
                .iter()
                .map(|c| {
                    c.text()
                        .ok_or_else(|| self.err(col, "has a non-text element"))
                })
                .collect(),
            Some(c) => Err(self.err(col, format!("is not a list ({})", short(c)))),
        }
    }
}

fn short(c: &Cell) -> String {
    match c {
        Cell::Other(t) => t.clone(),
        Cell::Bytes(b) => format!("{} bytes", b.len()),
        other => {
            let s = format!("{other:?}");
            s.chars().take(60).collect()
        }
    }
}
