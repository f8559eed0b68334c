//! TSIG key files: BIND's `key "name" { algorithm hmac-sha256; secret "base64"; };`
//! (what `tsig-keygen` prints), or a bare base64 secret (then the key name comes from the
//! command line and the algorithm defaults to hmac-sha256).
//!
//! [`parse_key_text`] is a pure parser; [`load_key_file`] adds the file read.

use std::fmt;
use std::path::{Path, PathBuf};

use data_encoding::BASE64;
use hickory_proto::rr::Name;
use hickory_proto::rr::TSigner;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;

/// TSIG algorithms this crate signs with (the ones hickory-proto implements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl Algorithm {
    /// Parses a BIND algorithm name (`hmac-sha256`, case-insensitive, optional trailing dot).
    pub fn from_bind_name(s: &str) -> Option<Self> {
        match s.trim_end_matches('.').to_ascii_lowercase().as_str() {
            "hmac-sha256" => Some(Self::HmacSha256),
            "hmac-sha384" => Some(Self::HmacSha384),
            "hmac-sha512" => Some(Self::HmacSha512),
            _ => None,
        }
    }

    pub fn bind_name(self) -> &'static str {
        match self {
            Self::HmacSha256 => "hmac-sha256",
            Self::HmacSha384 => "hmac-sha384",
            Self::HmacSha512 => "hmac-sha512",
        }
    }

    fn hickory(self) -> TsigAlgorithm {
        match self {
            Self::HmacSha256 => TsigAlgorithm::HmacSha256,
            Self::HmacSha384 => TsigAlgorithm::HmacSha384,
            Self::HmacSha512 => TsigAlgorithm::HmacSha512,
        }
    }
}

/// A TSIG key.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    /// Key name as the server knows it, without trailing dot.
    pub name: String,
    pub algorithm: Algorithm,
    pub secret: Vec<u8>,
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl TsigKey {
    /// A hickory signer for this key; `fudge` is the allowed clock difference in seconds.
    pub fn signer(&self, fudge: u16) -> Result<TSigner, KeyError> {
        let name = Name::from_ascii(&self.name).map_err(|e| KeyError::Parse {
            source_name: self.name.clone(),
            line: 0,
            message: format!("key name is not a DNS name: {e}"),
        })?;
        TSigner::new(self.secret.clone(), self.algorithm.hickory(), name, fudge).map_err(|e| {
            KeyError::Parse {
                source_name: self.name.clone(),
                line: 0,
                message: format!("cannot build TSIG signer: {e}"),
            }
        })
    }

    /// The key as a BIND `key {}` statement.
    pub fn to_bind(&self) -> String {
        format!(
            "key \"{}\" {{\n\talgorithm {};\n\tsecret \"{}\";\n}};\n",
            self.name,
            self.algorithm.bind_name(),
            BASE64.encode(&self.secret)
        )
    }
}

/// A key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read TSIG key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TSIG key {source_name}, line {line}: {message}")]
    Parse {
        source_name: String,
        line: usize,
        message: String,
    },
}

/// Reads a key file. `want_name` picks one key from a file with several; for a bare base64
/// file it is the key name and required.
pub fn load_key_file(path: &Path, want_name: Option<&str>) -> Result<TsigKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_key_text(&text, want_name).map_err(|e| match e {
        KeyError::Parse { line, message, .. } => KeyError::Parse {
            source_name: path.display().to_string(),
            line,
            message,
        },
        other => other,
    })
}

/// Parses key file text (see module docs). Errors name the line.
pub fn parse_key_text(text: &str, want_name: Option<&str>) -> Result<TsigKey, KeyError> {
    let err = |line: usize, message: String| KeyError::Parse {
        source_name: "<text>".into(),
        line,
        message,
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(err(1, "empty key file".into()));
    }
    if !trimmed.contains('{') {
        // bare base64 secret
        let name = want_name.ok_or_else(|| {
            err(
                1,
                "bare base64 secret: the key name must be given (--key-name)".into(),
            )
        })?;
        let secret = decode_secret(trimmed).map_err(|m| err(1, m))?;
        return Ok(TsigKey {
            name: name.trim_end_matches('.').to_string(),
            algorithm: Algorithm::HmacSha256,
            secret,
        });
    }

    let tokens = tokenize(text).map_err(|(line, m)| err(line, m))?;
    let mut keys = Vec::new();
    let mut i = 0;
    let next = |i: &mut usize| -> Option<&Token> {
        let t = tokens.get(*i);
        *i += 1;
        t
    };
    while i < tokens.len() {
        let t = next(&mut i).ok_or_else(|| err(0, "unexpected end".into()))?;
        if t.text != "key" || t.quoted {
            return Err(err(
                t.line,
                format!(
                    "expected `key`, found `{}` (only key statements are allowed)",
                    t.text
                ),
            ));
        }
        let name_tok = next(&mut i).ok_or_else(|| err(t.line, "`key` without a name".into()))?;
        let name = name_tok.text.trim_end_matches('.').to_string();
        let open =
            next(&mut i).ok_or_else(|| err(name_tok.line, "expected `{` after key name".into()))?;
        if open.text != "{" || open.quoted {
            return Err(err(
                open.line,
                format!("expected `{{` after key name, found `{}`", open.text),
            ));
        }
        let mut algorithm = None;
        let mut secret = None;
        loop {
            let field = next(&mut i)
                .ok_or_else(|| err(open.line, format!("key \"{name}\": missing `}}`")))?;
            if field.text == "}" && !field.quoted {
                break;
            }
            let value = next(&mut i)
                .ok_or_else(|| err(field.line, format!("`{}` without a value", field.text)))?;
            let semi = next(&mut i).ok_or_else(|| err(value.line, "missing `;`".into()))?;
            if semi.text != ";" || semi.quoted {
                return Err(err(
                    semi.line,
                    format!("expected `;` after `{} {}`", field.text, value.text),
                ));
            }
            match field.text.as_str() {
                "algorithm" => {
                    algorithm = Some(Algorithm::from_bind_name(&value.text).ok_or_else(|| {
                        err(value.line, format!("unsupported TSIG algorithm `{}` (use hmac-sha256, hmac-sha384 or hmac-sha512)", value.text))
                    })?)
                }
                "secret" => secret = Some(decode_secret(&value.text).map_err(|m| err(value.line, m))?),
                other => return Err(err(field.line, format!("unknown key field `{other}`"))),
            }
        }
        if let Some(semi) = tokens.get(i)
            && semi.text == ";"
            && !semi.quoted
        {
            i += 1;
        }
        let secret =
            secret.ok_or_else(|| err(open.line, format!("key \"{name}\" has no secret")))?;
        keys.push(TsigKey {
            name,
            algorithm: algorithm.unwrap_or(Algorithm::HmacSha256),
            secret,
        });
    }
    match want_name {
        Some(want) => {
            let want = want.trim_end_matches('.');
            keys.into_iter()
                .find(|k| k.name.eq_ignore_ascii_case(want))
                .ok_or_else(|| err(0, format!("no key named \"{want}\" in the file")))
        }
        None => keys
            .into_iter()
            .next()
            .ok_or_else(|| err(0, "no key statement".into())),
    }
}

fn decode_secret(s: &str) -> Result<Vec<u8>, String> {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let secret = BASE64
        .decode(compact.as_bytes())
        .map_err(|e| format!("secret is not valid base64: {e}"))?;
    if secret.is_empty() {
        return Err("secret is empty".into());
    }
    Ok(secret)
}

struct Token {
    text: String,
    quoted: bool,
    line: usize,
}

fn tokenize(text: &str) -> Result<Vec<Token>, (usize, String)> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut line = 1;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                let start = line;
                i += 2;
                loop {
                    match chars.get(i) {
                        None => return Err((start, "unterminated /* comment".into())),
                        Some('*') if chars.get(i + 1) == Some(&'/') => {
                            i += 2;
                            break;
                        }
                        Some('\n') => line += 1,
                        _ => {}
                    }
                    i += 1;
                }
            }
            '{' | '}' | ';' => {
                out.push(Token {
                    text: c.to_string(),
                    quoted: false,
                    line,
                });
                i += 1;
            }
            '"' => {
                let start = line;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err((start, "unterminated string".into())),
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            if ch == '\n' {
                                line += 1;
                            }
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(Token {
                    text: s,
                    quoted: true,
                    line: start,
                });
            }
            _ => {
                let mut s = String::new();
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !matches!(chars[i], '{' | '}' | ';' | '"')
                {
                    s.push(chars[i]);
                    i += 1;
                }
                out.push(Token {
                    text: s,
                    quoted: false,
                    line,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYGEN: &str = "key \"node-a\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0LXNlY3JldC1zZWNyZXQ=\";\n};\n";

    #[test]
    fn parses_tsig_keygen_output() {
        let k = parse_key_text(KEYGEN, None).unwrap();
        assert_eq!(k.name, "node-a");
        assert_eq!(k.algorithm, Algorithm::HmacSha256);
        assert_eq!(k.secret, b"secret-secret-secret");
        assert_eq!(parse_key_text(&k.to_bind(), None).unwrap(), k);
    }

    #[test]
    fn picks_key_by_name_and_skips_comments() {
        let text = format!(
            "# comment\n/* block\n comment */ {KEYGEN}\nkey other. {{ secret \"AAAA\"; algorithm HMAC-SHA512; }}; // end\n"
        );
        let k = parse_key_text(&text, Some("other")).unwrap();
        assert_eq!(k.name, "other");
        assert_eq!(k.algorithm, Algorithm::HmacSha512);
        assert!(parse_key_text(&text, Some("missing")).is_err());
    }

    #[test]
    fn bare_base64() {
        let k = parse_key_text("c2VjcmV0\n", Some("k1.")).unwrap();
        assert_eq!(
            (k.name.as_str(), k.secret.as_slice()),
            ("k1", &b"secret"[..])
        );
        let e = parse_key_text("c2VjcmV0\n", None).unwrap_err().to_string();
        assert!(e.contains("--key-name"), "{e}");
    }

    #[test]
    fn malformed_files_are_errors_not_panics() {
        for bad in [
            "",
            "key",
            "key \"x\"",
            "key \"x\" {",
            "key \"x\" { secret }",
            "key \"x\" { secret \"!!!\"; };",
            "key \"x\" { algorithm hmac-md5; secret \"AAAA\"; };",
            "key \"x\" { algorithm hmac-sha256; };",
            "key \"x\" { secret \"AAAA\" };",
            "key \"x\" { secret \"AAAA; };",
            "options { };",
            "/* never closed",
            "{{{{",
            "key \"x\" { frob 1; };",
        ] {
            let r = parse_key_text(bad, None);
            assert!(r.is_err(), "accepted {bad:?}");
        }
        let e = parse_key_text(
            "key \"x\" {\n algorithm hmac-md5;\n secret \"AAAA\"; };",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 2") && e.contains("hmac-md5"), "{e}");
    }
}
