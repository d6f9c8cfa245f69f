//! A guard run before the YAML parser: how deep the document's flow collections (`[…]`,
//! `{…}`) nest. The parser takes time quadratic in that depth (a 100,000-deep line kept it
//! busy for more than a minute), and no real configuration nests more than a few levels, so
//! a document past [`MAX_FLOW_DEPTH`] is refused at once, naming the line. Block nesting is
//! bounded by the parser's own recursion limit, which fails fast.

/// Deeper than any configuration Headscale documents by far.
pub(crate) const MAX_FLOW_DEPTH: usize = 64;

/// The 1-based line where flow nesting first exceeds `max`, if it does. Quoted scalars and
/// comments are skipped, so brackets inside strings do not count.
pub(crate) fn too_deep(text: &str, max: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut line = 1;
    let mut quote: Option<char> = None;
    let mut prev = '\n';
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' {
            line += 1;
        }
        match quote {
            Some('"') if c == '\\' => {
                chars.next();
            }
            Some('\'') if c == '\'' && chars.peek() == Some(&'\'') => {
                chars.next();
            }
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '#' if prev.is_whitespace() => {
                    for n in chars.by_ref() {
                        if n == '\n' {
                            line += 1;
                            break;
                        }
                    }
                }
                '[' | '{' => {
                    depth += 1;
                    if depth > max {
                        return Some(line);
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        prev = c;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_flow_nesting_outside_strings_and_comments() {
        assert_eq!(too_deep("a: [[1], {b: [2]}]\n", 3), None);
        assert_eq!(too_deep("a: 1\nb: [[[[1]]]]\n", 3), Some(2));
        assert_eq!(too_deep("a: \"[[[[\"\nb: '{{{{'\n", 3), None);
        assert_eq!(too_deep("a: 1 # [[[[[\n", 3), None);
        assert_eq!(too_deep("a: 'it''s [[[['\n", 3), None);
        assert_eq!(too_deep("a: \"\\\"[[[[\"\n", 3), None);
        let deep = format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(too_deep(&deep, MAX_FLOW_DEPTH), Some(1));
    }
}
