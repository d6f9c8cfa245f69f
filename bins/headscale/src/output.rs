//! Printing command results in the format `-o` asks for, as Go Headscale's `SuccessOutput`
//! does: the human text for the default, tab-indented JSON for `json`, one line for
//! `json-line`, YAML for `yaml`.

use anyhow::Context as _;
use serde::Serialize;

use crate::cli::OutputFormat;

/// Prints `value` in `format`; `human` is what the default (table) format prints.
pub(crate) fn success<T: Serialize>(
    value: &T,
    human: &str,
    format: OutputFormat,
) -> anyhow::Result<()> {
    let text = render(value, human, format)?;
    println!("{text}");
    Ok(())
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
