//! `--dot`: Graphviz, one node per graph node (colored by kind or role), edges labeled.

use super::GraphPicture;

pub fn render(name: &str, picture: &GraphPicture) -> String {
    let mut out = format!(
        "digraph {name} {{\n  rankdir=LR;\n  node [shape=box, style=filled, fontsize=10];\n  edge [fontsize=8];\n"
    );
    for (id, (label, kind, _host)) in &picture.nodes {
        out.push_str(&format!(
            "  {} [label={}, fillcolor=\"{}\"];\n",
            quote(id),
            quote(label),
            color(kind)
        ));
    }
    for (src, dst, label, _kind) in &picture.edges {
        out.push_str(&format!(
            "  {} -> {} [label={}];\n",
            quote(src),
            quote(dst),
            quote(label)
        ));
    }
    out.push_str("}\n");
    out
}

/// Labels may break lines (`\n` in DOT); any other control character is shown escaped.
fn quote(text: &str) -> String {
    format!(
        "\"{}\"",
        super::escape::controls(text, &['\n'])
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    )
}

pub fn color(kind: &str) -> &'static str {
    match kind {
        "patient-zero" | "flagged" => "#e4572e",
        "infected" => "#f3a712",
        "carrier" | "reached" => "#a8c686",
        "file" => "#dfe7fd",
        "proc" | "process" => "#fde2e4",
        "remote" => "#e2ece9",
        _ => "#eeeeee",
    }
}
