//! The Prometheus text exposition format (and OpenMetrics text, which `/metrics` serves)
//! into samples. PURE.
//!
//! Only what the rules need: `name{label="value",...} value [timestamp]` lines; `#`
//! lines (HELP, TYPE, EOF) and blank lines are skipped; the timestamp is ignored (the
//! scrape time is used). A line that cannot be read is counted, not fatal.

use super::Labels;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name (with its `_total`, `_bucket` suffix as written).
    pub name: String,
    /// Its labels.
    pub labels: Labels,
    /// Its value (NaN and ±Inf included).
    pub value: f64,
}

/// What a page held: its samples and how many lines could not be read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// The samples, in page order.
    pub samples: Vec<Sample>,
    /// Lines that were not comments, blank or samples.
    pub malformed: usize,
}

/// Parses a whole page.
pub fn parse(text: &str) -> Parsed {
    let mut out = Parsed::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line) {
            Some(s) => out.samples.push(s),
            None => out.malformed += 1,
        }
    }
    out
}

//= https://prometheus.io/docs/instrumenting/exposition_formats/#text-format-details
//# metric_name [ "{" label_name "=" `"` label_value `"` { "," label_name "=" `"` label_value `"` } [ "," ] "}" ] value [ timestamp ]
fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Labels::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = parse_labels(after, &mut labels)?;
    }
    let mut fields = rest.split_ascii_whitespace();
    let value = parse_value(fields.next()?)?;
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Reads `name="value",...}`; returns what follows the `}`.
fn parse_labels<'a>(mut s: &'a str, labels: &mut Labels) -> Option<&'a str> {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Some(rest);
        }
        let eq = s.find('=')?;
        let name = s[..eq].trim();
        if name.is_empty() {
            return None;
        }
        s = s[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        labels.insert(name.to_owned(), value);
        s = s[end + 1..].trim_start();
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_labels_escapes_and_special_values() {
        let page = "# HELP x_total Things.\n# TYPE x_total counter\n\
            x_total{route=\"/a\",class=\"2xx\"} 17\n\
            up 1 1700000000000\n\
            weird{v=\"q\\\"uote\\\\ back\\nnl\",} +Inf\n\
            nan_metric NaN\n\
            {bad} 1\n\
            novalue{a=\"b\"}\n\
            # EOF\n";
        let p = parse(page);
        assert_eq!(p.malformed, 2);
        assert_eq!(p.samples.len(), 4);
        assert_eq!(p.samples[0].name, "x_total");
        assert_eq!(p.samples[0].labels["route"], "/a");
        assert_eq!(p.samples[0].value, 17.0);
        assert_eq!(p.samples[1].value, 1.0);
        assert_eq!(p.samples[2].labels["v"], "q\"uote\\ back\nnl");
        assert!(p.samples[2].value.is_infinite());
        assert!(p.samples[3].value.is_nan());
    }
}
