//! Writes the graph as a JSON-lines dump (the format `vtrail-analysis` reads), Graphviz
//! DOT, or GraphML. Only edges at or after `since_ns` and the nodes they touch are written
//! when `since_ns` is set.
use std::{collections::BTreeSet, io::Write};

use anyhow::Result;
use sensor_common::graph::{DUMP_FORMAT, DumpHeader, DumpLine, Edge, HostInfo, Node, NodeData, SCHEMA_VERSION};

use super::GraphStore;

/// One type for the CLI flag and the control-socket request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Dot,
    Graphml,
}

pub fn export(store: &GraphStore, host: &HostInfo, format: Format, since_ns: Option<u64>, out: &mut dyn Write) -> Result<()> {
    let edges: Vec<Edge> = store.edges_since(since_ns.unwrap_or(0)).collect::<Result<_, _>>()?;
    let nodes: Vec<Node> = match since_ns {
        None => store.nodes().collect::<Result<_, _>>()?,
        Some(_) => {
            let ids: BTreeSet<&str> = edges.iter().flat_map(|e| [e.src.as_str(), e.dst.as_str()]).collect();
            let mut nodes = Vec::new();
            for id in ids {
                if let Some(n) = store.node(id)? {
                    nodes.push(n);
                }
            }
            nodes
        }
    };
    match format {
        Format::Json => write_json(host, since_ns, &nodes, &edges, out),
        Format::Dot => write_dot(&nodes, &edges, out),
        Format::Graphml => write_graphml(&nodes, &edges, out),
    }
}

fn write_json(host: &HostInfo, since_ns: Option<u64>, nodes: &[Node], edges: &[Edge], out: &mut dyn Write) -> Result<()> {
    let header = DumpHeader {
        format: DUMP_FORMAT.into(),
        schema_version: SCHEMA_VERSION,
        host: host.clone(),
        exported_ns: crate::host::procfs::now_wall_ns(),
        since_ns,
    };
    serde_json::to_writer(&mut *out, &header)?;
    out.write_all(b"\n")?;
    for n in nodes {
        serde_json::to_writer(&mut *out, &DumpLine::Node(n.clone()))?;
        out.write_all(b"\n")?;
    }
    for e in edges {
        serde_json::to_writer(&mut *out, &DumpLine::Edge(e.clone()))?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

fn label(node: &Node) -> String {
    match &node.data {
        NodeData::Host { hostname, .. } => format!("host {hostname}"),
        NodeData::Process { tgid, comm, .. } => format!("{comm} [{tgid}]"),
        NodeData::File { paths, ino, .. } => paths.last().cloned().unwrap_or_else(|| format!("inode {ino}")),
        NodeData::Remote { ip, .. } => ip.clone(),
        NodeData::User { name } => format!("user {name}"),
    }
}

fn is_marked(node: &Node) -> bool {
    matches!(node.data, NodeData::Process { tainted: true, .. } | NodeData::File { untrusted: true, .. })
}

/// DOT string literal: quotes and backslashes escaped, control characters dropped, so a
/// hostile file name cannot break out of the label.
fn dot_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn write_dot(nodes: &[Node], edges: &[Edge], out: &mut dyn Write) -> Result<()> {
    writeln!(out, "digraph vtrail {{")?;
    for n in nodes {
        let shape = match n.data {
            NodeData::Process { .. } => "box",
            NodeData::File { .. } => "note",
            NodeData::Remote { .. } | NodeData::Host { .. } => "ellipse",
            NodeData::User { .. } => "diamond",
        };
        let color = if is_marked(n) { "red" } else { "black" };
        writeln!(out, "  {} [label={}, shape={shape}, color={color}];", dot_str(&n.id), dot_str(&label(n)))?;
    }
    for e in edges {
        writeln!(out, "  {} -> {} [label={}];", dot_str(&e.src), dot_str(&e.dst), dot_str(e.kind().name()))?;
    }
    writeln!(out, "}}")?;
    Ok(())
}

fn xml(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\t')
        .map(|c| match c {
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '&' => "&amp;".into(),
            '"' => "&quot;".into(),
            '\'' => "&apos;".into(),
            c => c.to_string(),
        })
        .collect()
}

fn write_graphml(nodes: &[Node], edges: &[Edge], out: &mut dyn Write) -> Result<()> {
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(out, r#"<graphml xmlns="http://graphml.graphdrawing.org/xmlns">"#)?;
    for (id, on, name) in [
        ("kind", "node", "kind"), ("label", "node", "label"), ("marked", "node", "marked"), ("data", "node", "data"),
        ("ekind", "edge", "kind"), ("ts", "edge", "ts_ns"), ("attrs", "edge", "attrs"),
    ] {
        let ty = if id == "ts" { "long" } else if id == "marked" { "boolean" } else { "string" };
        writeln!(out, r#"  <key id="{id}" for="{on}" attr.name="{name}" attr.type="{ty}"/>"#)?;
    }
    writeln!(out, r#"  <graph id="vtrail" edgedefault="directed">"#)?;
    for n in nodes {
        let data = serde_json::to_value(&n.data)?;
        writeln!(
            out,
            r#"    <node id="{}"><data key="kind">{}</data><data key="label">{}</data><data key="marked">{}</data><data key="data">{}</data></node>"#,
            xml(&n.id),
            xml(data["kind"].as_str().unwrap_or("")),
            xml(&label(n)),
            is_marked(n),
            xml(&data.to_string())
        )?;
    }
    for e in edges {
        let json = serde_json::to_value(e)?;
        writeln!(
            out,
            r#"    <edge source="{}" target="{}"><data key="ekind">{}</data><data key="ts">{}</data><data key="attrs">{}</data></edge>"#,
            xml(&e.src),
            xml(&e.dst),
            xml(e.kind().name()),
            e.ts_ns,
            xml(&json.get("attrs").map(|a| a.to_string()).unwrap_or_else(|| "{}".into()))
        )?;
    }
    writeln!(out, "  </graph>\n</graphml>")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_stay_inside_their_quotes() {
        assert_eq!(dot_str("a\"];evil"), "\"a\\\"];evil\"");
        assert_eq!(xml("<x a='1'>&"), "&lt;x a=&apos;1&apos;&gt;&amp;");
        assert!(!dot_str("a\nb").contains('\n'));
    }
}
