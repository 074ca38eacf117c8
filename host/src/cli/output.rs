//! How the broker subcommands print: aligned tables and `key: value` lists for
//! people, the broker's JSON (pretty-printed) with `--json` for scripts.

use std::io::{self, Write};

use serde_json::Value;

/// Prints `value` as pretty JSON followed by a newline.
pub fn json(out: &mut dyn Write, value: &Value) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(io::Error::from)?;
    out.write_all(b"\n")
}

/// Prints a table: a header row and rows, columns padded to their widest cell.
pub fn table(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &mut dyn Iterator<Item = &str>| -> io::Result<()> {
        let mut text = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i + 1 == widths.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}  "));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(out, &mut header.iter().copied())?;
    for row in rows {
        line(out, &mut row.iter().map(String::as_str))?;
    }
    Ok(())
}

/// Prints `key: value` lines, keys padded to the widest.
pub fn fields(out: &mut dyn Write, pairs: &[(&str, String)]) -> io::Result<()> {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    for (key, value) in pairs {
        writeln!(out, "{:<width$} {value}", format!("{key}:"))?;
    }
    Ok(())
}

/// Reads a broker answer as its typed body (see `crate::wire`).
pub fn decode<T: serde::de::DeserializeOwned>(answer: &Value) -> Result<T, super::CliError> {
    T::deserialize(answer).map_err(|e| {
        super::CliError::Usage(format!(
            "unexpected answer from the broker (is it the same version as this command?): {e}"
        ))
    })
}

/// Text for people: `-` when empty.
pub fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_string()
    } else {
        text.to_string()
    }
}

/// A list for people: comma-separated, `-` when empty.
pub fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_string()
    } else {
        items.join(", ")
    }
}

/// A JSON value as display text: strings bare, null as `-`, lists comma-separated.
pub fn show(value: &Value) -> String {
    match value {
        Value::Null => "-".to_string(),
        Value::String(s) if s.is_empty() => "-".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "-".to_string(),
        Value::Array(items) => items.iter().map(show).collect::<Vec<_>>().join(", "),
        // Rates and means: three decimals are plenty for people; --json has them all.
        Value::Number(n) if n.is_f64() => {
            let text = format!("{:.3}", n.as_f64().unwrap_or_default());
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        }
        other => other.to_string(),
    }
}

/// A byte count for people: `812 B`, `245.3 KiB`, `1.2 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut size = n as f64 / 1024.0;
    let mut unit = 0;
    while size >= 1024.0 && unit + 1 < UNITS.len() {
        size /= 1024.0;
        unit += 1;
    }
    format!("{size:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_every_column_but_the_last() {
        let mut out = Vec::new();
        table(
            &mut out,
            &["ID", "STATUS"],
            &[vec!["pipeline-10".into(), "running".into()]],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "ID           STATUS\npipeline-10  running\n"
        );
    }

    #[test]
    fn byte_counts_use_binary_units() {
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(2048), "2.0 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
    }

    #[test]
    fn nulls_and_empty_lists_show_as_a_dash() {
        assert_eq!(show(&Value::Null), "-");
        assert_eq!(show(&serde_json::json!([])), "-");
        assert_eq!(show(&serde_json::json!(["a", "b"])), "a, b");
        assert_eq!(show(&serde_json::json!(3)), "3");
        assert_eq!(show(&serde_json::json!(11.139476674515096)), "11.139");
        assert_eq!(show(&serde_json::json!(74.3)), "74.3");
        assert_eq!(show(&serde_json::json!(2.0)), "2");
    }
}
