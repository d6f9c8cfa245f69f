//! Node names: turning a client's hostname into a DNS label the way Tailscale's
//! `dnsname.SanitizeHostname` does, and picking a unique given name with Headscale's
//! `-1`, `-2`, … collision suffixes.

/// RFC 1035 label limit; Tailscale truncates the input to this before cleaning it.
const MAX_LABEL_LEN: usize = 63;

/// The label Headscale uses when sanitising leaves nothing (`fallbackGivenName`).
pub const FALLBACK_GIVEN_NAME: &str = "node";

/// Suffixes Tailscale strips from hostnames before sanitising (`TrimCommonSuffixes`).
const COMMON_SUFFIXES: [&str; 3] = [".local", ".localdomain", ".lan"];

fn is_alnum(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}

fn is_dns_char(c: u8) -> bool {
    is_alnum(c) || c == b'-'
}

fn is_separator(c: u8) -> bool {
    matches!(c, b' ' | b'.' | b'@' | b'_')
}

/// Turns a client-supplied hostname into a DNS label: common local suffixes removed (each
/// once, in Tailscale's order), cut to 63 bytes, leading and trailing non-alphanumerics
/// dropped, inner separators (space, dot, `@`, `_`) turned into `-`, other invalid bytes
/// dropped, letters lowercased. May return an empty string.
pub fn sanitize_hostname(hostname: &str) -> String {
    let mut h = hostname;
    for suffix in COMMON_SUFFIXES {
        h = h.strip_suffix(suffix).unwrap_or(h);
    }
    sanitize_label(h)
}

/// Tailscale's `SanitizeLabel` (byte-wise, so multi-byte characters are dropped).
pub fn sanitize_label(label: &str) -> String {
    let bytes = label.as_bytes();
    let mut start = 0;
    let mut end = bytes.len().min(MAX_LABEL_LEN);
    while start < end && !is_alnum(bytes[start]) {
        start += 1;
    }
    while start < end && !is_alnum(bytes[end - 1]) {
        end -= 1;
    }
    let mut out = String::with_capacity(end - start);
    for (i, &c) in bytes.iter().enumerate().take(end).skip(start) {
        let boundary = i == start || i == end - 1;
        if !boundary && is_separator(c) {
            out.push('-');
        } else if is_dns_char(c) {
            out.push(char::from(c.to_ascii_lowercase()));
        }
    }
    out
}

/// Whether `label` is a valid DNS label (1–63 bytes, alphanumeric at both ends, only
/// alphanumerics and `-` inside), as admin renames require.
pub fn is_valid_label(label: &str) -> bool {
    let b = label.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_LABEL_LEN
        && is_alnum(b[0])
        && is_alnum(b[b.len() - 1])
        && b.iter().all(|&c| is_dns_char(c))
}

/// Whether `given` is still the name the server derived from `hostname` (its sanitized
/// form, or that with a `-N` collision suffix) rather than one an operator chose: only such
/// a name follows the client's hostname when it changes, as in Go Headscale.
pub fn is_auto_derived_given_name(given: &str, hostname: &str) -> bool {
    let base = sanitize_hostname(hostname);
    let base = if base.is_empty() {
        FALLBACK_GIVEN_NAME
    } else {
        base.as_str()
    };
    given == base
        || given
            .strip_prefix(base)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Picks the first free name among `base`, `base-1`, `base-2`, … (`base` empty means
/// [`FALLBACK_GIVEN_NAME`]); `taken` answers whether another node already holds a name.
pub fn resolve_given_name(base: &str, taken: impl Fn(&str) -> bool) -> String {
    let base = if base.is_empty() {
        FALLBACK_GIVEN_NAME
    } else {
        base
    };
    if !taken(base) {
        return base.to_owned();
    }
    let mut i: u64 = 1;
    loop {
        let candidate = format!("{base}-{i}");
        if !taken(&candidate) {
            return candidate;
        }
        i += 1;
    }
}

/// The MagicDNS FQDN of a node: `given_name.base_domain.` with a trailing dot, or just the
/// given name when no base domain is configured (as Headscale's `GetFQDN` does).
pub fn fqdn(given_name: &str, base_domain: &str) -> String {
    if base_domain.is_empty() {
        given_name.to_owned()
    } else {
        format!("{given_name}.{base_domain}.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_like_tailscale() {
        let cases = [
            ("My Laptop", "my-laptop"),
            ("host.local", "host"),
            ("host.localdomain", "host"),
            ("box.lan", "box"),
            ("foo.lan.local", "foo"),
            ("  -weird_name@home-  ", "weird-name-home"),
            ("ünïcode", "ncode"),
            ("___", ""),
            ("a.b.c", "a-b-c"),
            ("UPPER", "upper"),
            ("x!y", "xy"),
        ];
        for (input, want) in cases {
            assert_eq!(sanitize_hostname(input), want, "input {input:?}");
        }
        let long = "a".repeat(80);
        assert_eq!(sanitize_hostname(&long).len(), 63);
    }

    #[test]
    fn collision_suffixes_count_up() {
        let taken = ["web", "web-1", "web-3"];
        let t = |n: &str| taken.contains(&n);
        assert_eq!(resolve_given_name("web", t), "web-2");
        assert_eq!(resolve_given_name("db", t), "db");
        assert_eq!(resolve_given_name("", t), "node");
        assert_eq!(resolve_given_name("", |n: &str| n == "node"), "node-1");
    }

    #[test]
    fn labels_and_fqdns() {
        assert!(is_valid_label("a-1"));
        assert!(!is_valid_label("-a"));
        assert!(!is_valid_label("a_b"));
        assert!(!is_valid_label(""));
        assert!(!is_valid_label(&"a".repeat(64)));
        assert_eq!(fqdn("web", "ts.example.com"), "web.ts.example.com.");
        assert_eq!(fqdn("web", ""), "web");
    }

    #[test]
    fn auto_derived_names_are_the_sanitized_hostname_or_a_bumped_one() {
        assert!(is_auto_derived_given_name(
            "joes-mac-mini",
            "Joe's Mac mini"
        ));
        assert!(is_auto_derived_given_name("laptop-2", "laptop"));
        assert!(!is_auto_derived_given_name("laptop-x", "laptop"));
        assert!(!is_auto_derived_given_name("laptop-", "laptop"));
        assert!(!is_auto_derived_given_name("renamed", "laptop"));
    }
}
