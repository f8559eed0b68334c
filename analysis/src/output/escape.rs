//! Names in a dump (file paths, process names, names as sent on the wire, host ids) are
//! whatever the sender or the victim chose: a file called `x\n[+] origin: trusted` would
//! forge a report line, one with ESC or a C1 control would drive the reader's terminal.
//! Every output that is not JSON (serde escapes those) passes its names through here, with
//! the function for its format: `text`, `xml` (GraphML and HTML), `dot_quoted`.
//!
//! Control characters (C0, DEL, C1) become `\t`, `\n`, `\r` or `\xHH` (the code point, all
//! of them are below U+0100); a backslash becomes `\\`, so that an escape in the output
//! always means a control character in the data and never a name that spells one.

use std::borrow::Cow;
use std::fmt::Write;

/// For terminals and plain text: every control character and the backslash escaped.
pub fn text(raw: &str) -> Cow<'_, str> {
    controls(raw, &[])
}

/// Like `text`, but leaves the characters in `keep` as they are: for formats whose own
/// quoting already gives them a meaning (a line break in a DOT label, a backslash or a
/// newline in XML text).
pub fn controls<'a>(raw: &'a str, keep: &[char]) -> Cow<'a, str> {
    let needs = |c: char| (c.is_control() || c == '\\') && !keep.contains(&c);
    if !raw.chars().any(needs) {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len() + 8);
    for c in raw.chars() {
        if !needs(c) {
            out.push(c);
            continue;
        }
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            _ => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
        }
    }
    Cow::Owned(out)
}

/// XML text and attribute values (GraphML, and the HTML page). Labels break lines with
/// `\n`, which XML keeps; every other control character is shown escaped (most are not
/// even legal XML, and all would reach the terminal of whoever reads the file). A
/// backslash means nothing here.
pub fn xml(raw: &str) -> String {
    controls(raw, &['\n', '\\'])
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// A DOT quoted string, quotes included. Labels may break lines (`\n` in DOT); any other
/// control character is shown escaped.
pub fn dot_quoted(raw: &str) -> String {
    format!(
        "\"{}\"",
        controls(raw, &['\n'])
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_readably_and_unambiguously() {
        assert_eq!(text("plain /srv/x.sh"), "plain /srv/x.sh");
        assert!(matches!(text("plain"), Cow::Borrowed(_)));
        assert_eq!(
            text("evil\n[+] ok\x1b[2J\t\r\u{7f}\u{85}\u{9f}.sh"),
            "evil\\n[+] ok\\x1b[2J\\t\\r\\x7f\\x85\\x9f.sh"
        );
        // A name that spells an escape is told apart from one that holds the character.
        assert_eq!(text("a\\x1b"), "a\\\\x1b");
        // Not controls: printable non-ASCII stays as it is.
        assert_eq!(text("rapport-é-\u{a0}.pdf"), "rapport-é-\u{a0}.pdf");
        assert_eq!(controls("a\nb\x1bc\\", &['\n', '\\']), "a\nb\\x1bc\\");
    }

    #[test]
    fn each_format_quotes_its_own_syntax() {
        // XML: markup characters become entities, a line break and a backslash stay.
        assert_eq!(
            xml("<a href=\"x\">&'\n\x1b\\"),
            concat!(r"&lt;a href=&quot;x&quot;&gt;&amp;&apos;", "\n", r"\x1b\")
        );
        // DOT: inside quotes, a quote and every backslash (the data's, now `\\`, and the
        // one of each escape) are escaped again, a line break becomes DOT's `\n`.
        assert_eq!(dot_quoted("a\"b\\c\nd\x1b"), r#""a\"b\\\\c\nd\\x1b""#);
    }
}
