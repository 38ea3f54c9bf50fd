//! How results are printed: JSON with `--json`, tables and short lines otherwise.

use std::io::{ErrorKind, Write};

use comfy_table::{presets, ContentArrangement, Table};
use serde::Serialize;

/// `println!` for command output: a closed pipe (`ferry … | head`) ends the program quietly
/// instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(&format!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use say;

/// Writes to stdout. When the reader has gone away the program stops quietly, as a SIGPIPE
/// would stop a C program; any other failure to write is reported and exits.
pub fn write_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == ErrorKind::BrokenPipe {
            std::process::exit(crate::exit::SUCCESS.into());
        }
        eprintln!("error: cannot write the output: {e}");
        std::process::exit(crate::exit::LOCAL_FILE.into());
    }
}

/// The output mode of a command.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// Print JSON.
    pub json: bool,
    /// Print only the essential value of what was created.
    pub quiet: bool,
}

impl Output {
    /// Prints `value` as JSON, or calls `human` to print it for people.
    pub fn show<T: Serialize + ?Sized>(&self, value: &T, human: impl FnOnce(&T)) -> anyhow::Result<()> {
        if self.json {
            print_json(value)
        } else {
            human(value);
            Ok(())
        }
    }

    /// Like [`Output::show`] for something just created: with `--quiet`, prints only
    /// `essential` (an id, a key, a secret) so that scripts can capture it.
    pub fn created<T: Serialize + ?Sized>(
        &self,
        value: &T,
        essential: impl std::fmt::Display,
        human: impl FnOnce(&T),
    ) -> anyhow::Result<()> {
        if self.quiet {
            say!("{essential}");
            Ok(())
        } else {
            self.show(value, human)
        }
    }
}

/// Prints `value` as pretty JSON on stdout, every point in time as RFC 3339 (see
/// [`times_as_rfc3339`]).
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let mut value = serde_json::to_value(value)?;
    times_as_rfc3339(&mut value);
    say!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

/// Fields that hold a point in time besides those named `*_at`.
const TIME_FIELDS: &[&str] = &["at", "deadline", "last_contact"];

/// Rewrites points in time from unix seconds, as the API carries them, to RFC 3339 in UTC
/// with whole seconds (`2025-01-31T12:00:00Z`), the form of TUF's `expires` that the trust
/// commands print: the CLI's JSON output has one time format. A field holds a time when it is
/// named `*_at`, `at`, `deadline` or `last_contact` and its value is an integer. `custom`
/// objects are publishers' data and left as they are.
pub fn times_as_rfc3339(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(fields) => {
            for (name, field) in fields.iter_mut() {
                match field.as_i64() {
                    Some(secs) if name.ends_with("_at") || TIME_FIELDS.contains(&name.as_str()) => {
                        *field = Value::String(crate::time::format_unix(secs));
                    }
                    _ if name == "custom" => {}
                    _ => times_as_rfc3339(field),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(times_as_rfc3339),
        _ => {}
    }
}

/// Prints a table with a header row.
pub fn print_table<I>(header: &[&str], rows: I)
where
    I: IntoIterator<Item = Vec<String>>,
{
    let mut table = new_table();
    table.set_header(header.iter().map(|h| h.to_uppercase()));
    for row in rows {
        table.add_row(row);
    }
    print(&table);
}

/// Prints `name: value` lines, aligned.
pub fn print_fields(fields: &[(&str, String)]) {
    let mut table = new_table();
    for (name, value) in fields {
        table.add_row(vec![format!("{name}:"), value.clone()]);
    }
    print(&table);
}

fn new_table() -> Table {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING).set_content_arrangement(ContentArrangement::Dynamic);
    table
}

/// Prints a table with columns two spaces apart and no padding at the line ends.
fn print(table: &Table) {
    let mut table = table.clone();
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    let text: String = table.lines().map(|line| format!("{}\n", line.trim_end())).collect();
    write_stdout(&text);
}

/// Joins displayable items with `, `; `-` when there are none.
pub fn list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let joined = items.into_iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
    if joined.is_empty() {
        "-".to_owned()
    } else {
        joined
    }
}

/// An optional value, `-` when absent.
pub fn opt<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// `yes` or `no`.
pub fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

/// A wire enum's name as JSON has it (`reboot_pending`, `security`).
pub fn wire_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".to_owned(),
    }
}

/// Prints catalogue entries (products, platforms): name, description, creation time.
pub fn print_described<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str, i64)>) {
    print_table(
        &["name", "description", "created"],
        entries.into_iter().map(|(name, description, created_at)| {
            vec![name.to_owned(), description.to_owned(), crate::time::format_unix(created_at)]
        }),
    );
}
