//! Rendering reports: readable text by default, JSON for tools, DOT and GraphML for graph
//! viewers, and one self-contained HTML page (inline SVG, no scripts or fonts fetched).

pub mod dot;
pub mod escape;
pub mod graphml;
pub mod html;
pub mod json;
pub mod style;
pub mod text;

use std::collections::BTreeMap;

use crate::load::LoadReport;
use crate::rules::RulesReport;
use crate::spread::SpreadReport;
use crate::trace::TraceReport;
use crate::view::{EdgeView, TreeHost, edge_kind_name};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Dot,
    Graphml,
    Html,
}

/// A plain node-and-edge picture of a report for DOT and GraphML.
#[derive(Default)]
pub struct GraphPicture {
    /// id -> (label, kind, host)
    pub nodes: BTreeMap<String, (String, String, String)>,
    /// (src, dst, label, kind)
    pub edges: Vec<(String, String, String, String)>,
}

impl GraphPicture {
    pub fn from_tree(tree: &[TreeHost]) -> Self {
        let mut picture = GraphPicture::default();
        for host in tree {
            let label = match &host.time {
                Some(t) => format!("{}\n{}", host.label, t),
                None => host.label.clone(),
            };
            picture.nodes.insert(
                host.id.clone(),
                (label, host.role.to_owned(), host.id.clone()),
            );
        }
        for host in tree {
            if let Some(parent) = &host.parent {
                picture
                    .nodes
                    .entry(parent.clone())
                    .or_insert_with(|| (parent.clone(), "host".into(), parent.clone()));
                picture.edges.push((
                    parent.clone(),
                    host.id.clone(),
                    host.via.clone().unwrap_or_default(),
                    if host.ran() { "infected" } else { "received" }.into(),
                ));
            }
        }
        picture
    }

    pub fn add_edge(&mut self, edge: &EdgeView) {
        self.nodes.entry(edge.src.clone()).or_insert_with(|| {
            (
                edge.src_label.clone(),
                kind_of(&edge.src),
                edge.host.clone(),
            )
        });
        self.nodes.entry(edge.dst.clone()).or_insert_with(|| {
            (
                edge.dst_label.clone(),
                kind_of(&edge.dst),
                edge.host.clone(),
            )
        });
        let kind = edge_kind_name(edge.kind);
        self.edges.push((
            edge.src.clone(),
            edge.dst.clone(),
            format!("{} {}", kind, edge.time),
            kind,
        ));
    }
}

fn kind_of(id: &str) -> String {
    id.split(':').next().unwrap_or("node").to_owned()
}

fn trace_picture(report: &TraceReport) -> GraphPicture {
    let mut picture = GraphPicture::default();
    let mut seen = std::collections::HashSet::new();
    let all = report
        .backward
        .edges
        .iter()
        .chain(&report.behaviours)
        .chain(report.forward.sent_to.iter().map(|s| &s.edge));
    for edge in all {
        if seen.insert((edge.ts_ns, edge.src.clone(), edge.dst.clone(), edge.kind)) {
            picture.add_edge(edge);
        }
    }
    for send in &report.forward.sent_to {
        if let Some(received) = &send.received {
            picture.edges.push((
                send.edge.dst.clone(),
                received.file_id.clone(),
                format!("received {}", received.time),
                "received_from".into(),
            ));
            picture
                .nodes
                .entry(received.file_id.clone())
                .or_insert_with(|| (received.file.clone(), "file".into(), received.host.clone()));
        }
    }
    for hop in &report.backward.hops {
        picture.edges.push((
            hop.sent.dst.clone(),
            hop.received.file_id.clone(),
            format!("received {}", hop.received.time),
            "received_from".into(),
        ));
        picture
            .nodes
            .entry(hop.received.file_id.clone())
            .or_insert_with(|| {
                (
                    hop.received.file.clone(),
                    "file".into(),
                    hop.received.host.clone(),
                )
            });
    }
    picture
}

pub fn render_trace(format: Format, report: &TraceReport, load: &LoadReport) -> String {
    match format {
        Format::Text => text::trace(report, load),
        Format::Json => json::render("trace", report, load),
        Format::Dot => dot::render("vtrail_trace", &trace_picture(report)),
        Format::Graphml => graphml::render(&trace_picture(report)),
        Format::Html => html::trace(report, load),
    }
}

pub fn render_spread(format: Format, report: &SpreadReport, load: &LoadReport) -> String {
    match format {
        Format::Text => text::spread(report, load),
        Format::Json => json::render("spread", report, load),
        Format::Dot => dot::render("vtrail_spread", &GraphPicture::from_tree(&report.tree())),
        Format::Graphml => graphml::render(&GraphPicture::from_tree(&report.tree())),
        Format::Html => html::spread(report, load),
    }
}

/// Rules are lists, not graphs: DOT and GraphML have nothing to draw, so they are refused.
pub fn render_rules(
    format: Format,
    report: &RulesReport,
    load: &LoadReport,
) -> Result<String, String> {
    match format {
        Format::Text => Ok(text::rules(report, load)),
        Format::Json => Ok(json::render("rules", report, load)),
        Format::Html => Ok(html::rules(report, load)),
        Format::Dot | Format::Graphml => {
            Err("rules has no graph to draw: use text, --json or --html".to_owned())
        }
    }
}
