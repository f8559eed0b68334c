//! `--json`: `{"load": <LoadReport>, "<question>": <report>}`, one document.

use serde::Serialize;

use crate::load::LoadReport;

pub fn render(question: &str, report: &impl Serialize, load: &LoadReport) -> String {
    let document = serde_json::json!({ "load": load, question: report });
    let mut text = serde_json::to_string_pretty(&document)
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    text.push('\n');
    text
}
