//! `--dot`: Graphviz, one node per graph node (colored by kind or role), edges labeled.

use super::GraphPicture;
use super::escape::dot_quoted;
use super::style::color;

pub fn render(name: &str, picture: &GraphPicture) -> String {
    let mut out = format!(
        "digraph {name} {{\n  rankdir=LR;\n  node [shape=box, style=filled, fontsize=10];\n  edge [fontsize=8];\n"
    );
    for (id, (label, kind, _host)) in &picture.nodes {
        out.push_str(&format!(
            "  {} [label={}, fillcolor=\"{}\"];\n",
            dot_quoted(id),
            dot_quoted(label),
            color(kind)
        ));
    }
    for (src, dst, label, kind) in &picture.edges {
        // A copy that was never run (a carrier's) is dashed: held, not an infection.
        let style = if kind == "received" { ", style=dashed" } else { "" };
        out.push_str(&format!(
            "  {} -> {} [label={}{style}];\n",
            dot_quoted(src),
            dot_quoted(dst),
            dot_quoted(label)
        ));
    }
    out.push_str("}\n");
    out
}
