//! The frame every page a person sees shares: a title, one small stylesheet compiled into the
//! binary, and a layout that reads on a phone (viewport meta, fluid width, wrapped commands).

/// The whole stylesheet, inline so a page is one request and works offline.
const STYLE: &str = "\
:root{color-scheme:light dark;--fg:#1f2328;--bg:#fff;--muted:#59636e;--box:#f6f8fa;--line:#d1d9e0;--ok:#1a7f37;--bad:#cf222e}\
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--bg:#0d1117;--muted:#9198a1;--box:#151b23;--line:#3d444d;--ok:#3fb950;--bad:#f85149}}\
*{box-sizing:border-box}\
body{margin:0;font:16px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:var(--fg);background:var(--bg)}\
main{max-width:40rem;margin:0 auto;padding:2rem 1.25rem}\
header{font-weight:600;color:var(--muted);letter-spacing:.02em;margin-bottom:1.5rem}\
h1{font-size:1.5rem;line-height:1.25;margin:0 0 1rem}\
p{margin:0 0 1rem}\
pre{background:var(--box);border:1px solid var(--line);border-radius:6px;padding:.75rem 1rem;overflow-x:auto;white-space:pre-wrap;word-break:break-all;font-size:.9rem}\
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}\
a{color:inherit}\
.ok{color:var(--ok)}.bad{color:var(--bad)}\
ul{padding-left:1.25rem}li{margin:.25rem 0}";

/// A complete HTML page: `title` in the tab and as the heading, `body` (already escaped HTML)
/// below it.
pub(crate) fn html(title: &str, body: &str) -> String {
    let title = escape(title);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title} - headscale</title><style>{STYLE}</style></head>\n\
         <body><main><header>headscale</header><h1>{title}</h1>\n{body}\n</main></body></html>\n"
    )
}

/// HTML-escapes text for element content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_escaped_and_pages_fit_phones() {
        let p = html("a<b", "<p>x</p>");
        assert!(p.contains("<h1>a&lt;b</h1>"));
        assert!(p.contains("name=\"viewport\""));
        assert!(p.contains("<p>x</p>"));
    }
}
