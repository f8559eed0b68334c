//! YARA-X, in process: every `*.yar`/`*.yara` file of a directory compiled once at
//! start-up; a rule that does not compile is an error naming its file and line.
use std::{path::{Path, PathBuf}, time::Duration};

/// How long one file's scan may take before it is reported as timed out.
const SCAN_TIMEOUT: Duration = Duration::from_secs(10);
/// Rule files read from the directory, at most (a directory of millions is a mistake).
const MAX_RULE_FILES: usize = 10_000;

pub struct Yara {
    rules: yara_x::Rules,
    pub files: usize,
    pub rules_count: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum YaraError {
    #[error("scan.yara_rules {dir}: {source}")]
    ReadDir { dir: PathBuf, source: std::io::Error },
    #[error("scan.yara_rules: cannot read {file}: {source}")]
    Read { file: PathBuf, source: std::io::Error },
    #[error("scan.yara_rules: {file} line {line}: {message}")]
    Compile { file: PathBuf, line: usize, message: String },
}

/// A rule source that is not a file of the rules directory (`apply-rules`): a name to
/// report errors under, and the source.
pub struct RuleSource {
    pub origin: String,
    pub text: String,
}

impl Yara {
    /// The rules of `dir` (every `*.yar`/`*.yara` file) and the `extra` sources; Ok(None)
    /// if there are none (the directory does not exist or holds no rule file).
    pub fn compile(dir: Option<&Path>, extra: &[RuleSource]) -> Result<Option<Self>, YaraError> {
        let files = match dir {
            Some(dir) => rule_files(dir)?,
            None => Vec::new(),
        };
        if files.is_empty() && extra.is_empty() {
            return Ok(None);
        }
        let mut sources = Vec::with_capacity(files.len() + extra.len());
        for file in &files {
            let text = std::fs::read(file).map_err(|source| YaraError::Read { file: file.clone(), source })?;
            sources.push((file.display().to_string(), text));
        }
        sources.extend(extra.iter().map(|s| (s.origin.clone(), s.text.as_bytes().to_vec())));
        let mut compiler = yara_x::Compiler::new();
        for (n, (origin, text)) in sources.iter().enumerate() {
            // Each source in its own namespace: two files may name a rule alike.
            compiler.new_namespace(&format!("f{n}"));
            let source = yara_x::SourceCode::from(text.as_slice()).with_origin(origin.clone());
            if let Err(e) = compiler.add_source(source) {
                let report = e.to_string();
                return Err(YaraError::Compile { file: origin.into(), line: line_in(&report, origin), message: first_line(&report) });
            }
        }
        let rules = compiler.build();
        let rules_count = rules.iter().len();
        Ok(Some(Self { rules, files: sources.len(), rules_count }))
    }

    /// The identifiers of the rules `data` matches.
    pub fn scan(&self, data: &[u8]) -> Result<Vec<String>, String> {
        let mut scanner = yara_x::Scanner::new(&self.rules);
        scanner.set_timeout(SCAN_TIMEOUT);
        let results = scanner.scan(data).map_err(|e| format!("yara-x: {e}"))?;
        Ok(results.matching_rules().map(|r| r.identifier().to_owned()).collect())
    }
}

/// The rule files of `dir`, sorted; none if it does not exist.
fn rule_files(dir: &Path) -> Result<Vec<PathBuf>, YaraError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(YaraError::ReadDir { dir: dir.into(), source }),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yar" || x == "yara") && p.is_file())
        .take(MAX_RULE_FILES)
        .collect();
    files.sort();
    Ok(files)
}

fn first_line(report: &str) -> String {
    report.lines().next().unwrap_or("").trim().to_owned()
}

/// The line of `origin:LINE:COL` in a YARA-X report (0 if it names none).
fn line_in(report: &str, origin: &str) -> usize {
    let needle = format!("{origin}:");
    report
        .match_indices(&needle)
        .filter_map(|(at, _)| report[at + needle.len()..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .next()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vtrail-yara-{}-{}", std::process::id(), files.len() * 7 + files[0].0.len()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn rules_match_and_a_bad_rule_names_its_file_and_line() {
        let good = "rule payload { strings: $a = \"VTRAIL-TEST\" condition: $a }\n";
        let dir = dir_with(&[("a.yar", good), ("notes.txt", "not a rule")]);
        let yara = Yara::compile(Some(&dir), &[]).unwrap().unwrap();
        assert_eq!((yara.files, yara.rules_count), (1, 1));
        assert_eq!(yara.scan(b"xx VTRAIL-TEST yy").unwrap(), vec!["payload"]);
        assert!(yara.scan(b"clean").unwrap().is_empty());

        let dir = dir_with(&[("a.yar", good), ("b.yara", "rule b {\n  condition:\n    nosuch_identifier\n}\n")]);
        match Yara::compile(Some(&dir), &[]) {
            Err(YaraError::Compile { file, line, message }) => {
                assert!(file.ends_with("b.yara"), "{file:?}");
                assert_eq!(line, 3, "{message}");
                assert!(message.contains("nosuch_identifier") || message.contains("unknown"), "{message}");
            }
            other => panic!("expected a compile error, got {:?}", other.map(|y| y.map(|y| y.rules_count))),
        }
        assert!(Yara::compile(Some(&dir.join("absent")), &[]).unwrap().is_none());
    }

    #[test]
    fn the_rule_vtrail_analysis_writes_loads_as_is() {
        // As `vtrail-analysis rules` writes it (analysis/src/rules.rs).
        let hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let rule = format!(
            "import \"hash\"\n\nrule vtrail_e3b0c44298fc\n{{\n    meta:\n        description = \"vtrail-analysis: /srv/x\"\n        hashes = 1\n    condition:\n        hash.sha256(0, filesize) == \"{hash}\"\n}}\n"
        );
        let dir = dir_with(&[("rules.yar", &rule), ("x", "")]);
        let yara = Yara::compile(Some(&dir), &[]).unwrap().unwrap();
        assert_eq!(yara.scan(b"").unwrap(), vec!["vtrail_e3b0c44298fc"]);
        assert!(yara.scan(b"x").unwrap().is_empty());
    }
}
