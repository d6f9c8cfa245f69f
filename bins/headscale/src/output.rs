//! Printing command results in the format `-o` asks for, as Go Headscale 0.29.3's CLI does:
//! the human text for the default, and for `json`, `json-line` and `yaml` the bytes Go's
//! encoders produce for the same value ([`crate::goformat`]).

use anyhow::Context as _;
use serde::Serialize;

use crate::cli::OutputFormat;
use crate::goformat::GoValue;

/// Prints `value` in `format`; `human` is what the default (table) format prints.
pub(crate) fn success(value: &GoValue, human: &str, format: OutputFormat) -> anyhow::Result<()> {
    let text = match format {
        OutputFormat::Table => human.to_owned(),
        OutputFormat::Json => value.to_json(true),
        OutputFormat::JsonLine => value.to_json(false),
        OutputFormat::Yaml => value.to_yaml(),
    };
    line(&text)
}

/// Prints `text` and a newline on stdout. A reader that went away (`headscale policy get |
/// head -1`) is not an error: the output was for it, and nothing else is to be done.
pub(crate) fn line(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// A failure as Go prints it with `-o`: `{"error": "..."}` in the asked format on stderr;
/// false for the default format (the caller prints `Error: ...`).
pub(crate) fn failure(message: &str, format: OutputFormat) -> bool {
    let value = GoValue::Plain("error", message.to_owned());
    let text = match format {
        OutputFormat::Table => return false,
        OutputFormat::Json => value.to_json(true),
        OutputFormat::JsonLine => value.to_json(false),
        OutputFormat::Yaml => value.to_yaml(),
    };
    eprintln!("{text}");
    true
}

/// Prints a value that has no Go twin (our version information) with serde.
pub(crate) fn success_serde<T: Serialize>(
    value: &T,
    human: &str,
    format: OutputFormat,
) -> anyhow::Result<()> {
    let text = render(value, human, format)?;
    line(&text)
}

fn render<T: Serialize>(value: &T, human: &str, format: OutputFormat) -> anyhow::Result<String> {
    Ok(match format {
        OutputFormat::Table => human.to_owned(),
        OutputFormat::Json => {
            let mut buf = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
            value.serialize(&mut ser).context("encoding JSON output")?;
            String::from_utf8(buf).context("encoding JSON output")?
        }
        OutputFormat::JsonLine => serde_json::to_string(value).context("encoding JSON output")?,
        OutputFormat::Yaml => serde_yaml_ng::to_string(value)
            .context("encoding YAML output")?
            .trim_end()
            .to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let v = serde_json::json!({"a": 1});
        assert_eq!(render(&v, "human", OutputFormat::Table).unwrap(), "human");
        assert_eq!(
            render(&v, "human", OutputFormat::Json).unwrap(),
            "{\n\t\"a\": 1\n}"
        );
        assert_eq!(
            render(&v, "human", OutputFormat::JsonLine).unwrap(),
            "{\"a\":1}"
        );
        assert_eq!(render(&v, "human", OutputFormat::Yaml).unwrap(), "a: 1");
    }
}
