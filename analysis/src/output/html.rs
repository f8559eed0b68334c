//! `--html`: one self-contained page - the propagation drawn as an inline SVG tree (hosts
//! as circles colored by role, parent above child), an infections-per-step chart, and the
//! timeline as a table. No scripts, no external fonts or styles: it opens offline and can
//! be attached to a ticket as is.

use std::collections::HashMap;
use std::fmt::Write;

use super::escape::xml;
use super::style::color;
use crate::load::LoadReport;
use crate::rules::RulesReport;
use crate::spread::SpreadReport;
use crate::trace::TraceReport;
use crate::view::TreeHost;

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}\
.warn{color:#a33}.svgbox{overflow:auto;border:1px solid #ddd;max-height:80vh}code,pre{font-size:.85em}.legend span{display:inline-block;padding:2px 8px;margin-right:6px;border-radius:3px}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head>\n<body>\n<h1>{}</h1>\n{body}</body></html>\n",
        xml(title),
        xml(title)
    )
}

fn warnings(out: &mut String, load: &LoadReport, own: &[String]) {
    if load.warnings.is_empty() && own.is_empty() {
        return;
    }
    out.push_str("<h2>Warnings (results may be partial)</h2><ul>");
    for w in load.warnings.iter().chain(own) {
        let _ = write!(out, "<li class=\"warn\">{}</li>", xml(w));
    }
    out.push_str("</ul>\n");
}

/// At the top of the page, before any answer: see `text::load_summary`.
fn partial_notice(out: &mut String, load: &LoadReport) {
    if !load.partial {
        return;
    }
    out.push_str("<p class=\"warn\"><b>Partial input: records were lost; every answer below is from what could be read.</b></p><ul>");
    for damage in load.damage() {
        let _ = write!(out, "<li class=\"warn\">{}</li>", xml(&damage));
    }
    out.push_str("</ul>\n");
}

fn legend(out: &mut String, roles: &[&str]) {
    out.push_str("<p class=\"legend\">");
    for role in roles {
        let _ = write!(
            out,
            "<span style=\"background:{}\">{}</span>",
            color(role),
            role
        );
    }
    out.push_str("</p>\n");
}

/// Tidy-enough layered layout: leaves get successive columns in depth-first order, a parent
/// sits above the middle of its children, depth gives the row.
pub fn tree_svg(tree: &[TreeHost]) -> String {
    const COLUMN: f64 = 34.0;
    const ROW: f64 = 90.0;
    let index: HashMap<&str, usize> = tree
        .iter()
        .enumerate()
        .map(|(i, h)| (h.id.as_str(), i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); tree.len()];
    let mut roots = Vec::new();
    for (i, host) in tree.iter().enumerate() {
        match host.parent.as_deref().and_then(|p| index.get(p)) {
            Some(&p) if p != i => children[p].push(i),
            _ => roots.push(i),
        }
    }
    let mut x = vec![0.0f64; tree.len()];
    let mut depth = vec![0usize; tree.len()];
    let mut next_column = 0.0;
    // Iterative post-order so that deep chains cannot overflow the stack.
    let mut placed = vec![false; tree.len()];
    for &root in &roots {
        let mut stack = vec![(root, 0usize, false)];
        while let Some((node, d, expanded)) = stack.pop() {
            if placed[node] {
                continue;
            }
            depth[node] = d;
            if children[node].is_empty() {
                x[node] = next_column;
                next_column += 1.0;
                placed[node] = true;
            } else if expanded {
                let kids = &children[node];
                x[node] = (x[kids[0]] + x[kids[kids.len() - 1]]) / 2.0;
                placed[node] = true;
            } else {
                stack.push((node, d, true));
                for &kid in children[node].iter().rev() {
                    stack.push((kid, d + 1, false));
                }
            }
        }
    }
    let max_depth = depth.iter().copied().max().unwrap_or(0);
    let width = (next_column.max(1.0) * COLUMN + 80.0).ceil();
    let height = ((max_depth + 1) as f64 * ROW + 40.0).ceil();
    let position = |i: usize| (40.0 + x[i] * COLUMN, 30.0 + depth[i] as f64 * ROW);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-size=\"9\">\n"
    );
    for (i, kids) in children.iter().enumerate() {
        let (px, py) = position(i);
        for &kid in kids {
            let (cx, cy) = position(kid);
            // Dashed to a host that holds the copy but never ran it, as in `--dot`.
            let dash = if tree[kid].ran() { "" } else { " stroke-dasharray=\"4 3\"" };
            let _ = writeln!(
                svg,
                "<line x1=\"{px:.1}\" y1=\"{py:.1}\" x2=\"{cx:.1}\" y2=\"{cy:.1}\" stroke=\"#888\" stroke-width=\"1\"{dash}/>"
            );
        }
    }
    for (i, host) in tree.iter().enumerate() {
        let (cx, cy) = position(i);
        let tooltip = format!(
            "{} ({})\n{}\n{}{}",
            host.label,
            host.id,
            host.role,
            host.time.as_deref().unwrap_or(""),
            host.via
                .as_deref()
                .map(|v| format!("\nvia {v}"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            svg,
            "<g><title>{}</title><circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"9\" fill=\"{}\" stroke=\"#333\"/>\
             <text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(30 {cx:.1} {:.1})\">{}</text></g>",
            xml(&tooltip),
            color(host.role),
            cy + 20.0,
            cy + 20.0,
            xml(&host.label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn bar_chart(points: &[(String, usize)]) -> String {
    let max = points.iter().map(|p| p.1).max().unwrap_or(1).max(1) as f64;
    let bar = 14.0;
    let width = (points.len() as f64 * bar + 60.0).max(200.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"160\" font-size=\"9\">\n"
    );
    for (i, (label, value)) in points.iter().enumerate() {
        let h = *value as f64 / max * 120.0;
        let x = 30.0 + i as f64 * bar;
        let _ = writeln!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"><title>{}: {value}</title></rect>",
            130.0 - h,
            bar - 2.0,
            color("infected"),
            xml(label)
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"2\" y=\"12\">{}</text><line x1=\"28\" y1=\"130\" x2=\"{width}\" y2=\"130\" stroke=\"#333\"/></svg>",
        max as usize
    );
    svg
}

fn table(out: &mut String, headers: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    out.push_str("<table><tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", xml(h));
    }
    out.push_str("</tr>\n");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", xml(&cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

pub fn spread(report: &SpreadReport, load: &LoadReport) -> String {
    let mut body = String::new();
    partial_notice(&mut body, load);
    let t = &report.topology;
    let _ = writeln!(
        body,
        "<p>{}. {} of {} loaded hosts infected, {} carrier(s) (received it, never ran it); patient zero: <b>{}</b>; doubling time {}; clock skew allowance ±{}.</p>",
        xml(&report.question),
        t.hosts_infected,
        t.hosts_loaded,
        t.carriers,
        xml(&report.patient_zeros.join(", ")),
        xml(report.doubling.median.as_deref().unwrap_or("n/a")),
        xml(&report.skew_allowance)
    );
    body.push_str("<h2>Propagation tree</h2>\n");
    legend(&mut body, &["patient-zero", "infected", "carrier"]);
    let _ = writeln!(
        body,
        "<div class=\"svgbox\">{}</div>",
        tree_svg(&report.tree())
    );
    let _ = writeln!(body, "<h2>New infections per {}</h2>", xml(&report.step));
    let points: Vec<(String, usize)> = report
        .timeline
        .iter()
        .map(|b| (b.start.clone(), b.new_infections))
        .collect();
    body.push_str(&bar_chart(&points));
    body.push_str("<h2>Super infectors</h2>\n");
    table(
        &mut body,
        &["host", "infected directly", "descendants", "carriers made", "super"],
        report.super_infectors.iter().take(20).map(|s| {
            vec![
                s.host.clone(),
                s.direct.to_string(),
                s.descendants.to_string(),
                s.carriers.to_string(),
                if s.flagged_super {
                    "yes".into()
                } else {
                    String::new()
                },
            ]
        }),
    );
    body.push_str("<h2>Timeline</h2>\n");
    table(
        &mut body,
        &["infected at", "host", "parent", "via", "first execution"],
        report.hosts.iter().map(|h| {
            vec![
                h.infected_at
                    .clone()
                    .unwrap_or_else(|| "carrier: never executed".into()),
                format!("{} ({})", h.host, h.hostname),
                format!(
                    "{} [{}]",
                    h.parent.clone().unwrap_or_default(),
                    h.parent_kind
                ),
                h.via
                    .iter()
                    .chain(h.other_arrivals())
                    .map(|v| v.sentence())
                    .collect::<Vec<_>>()
                    .join("; also entered: "),
                h.first_execution
                    .as_ref()
                    .map(|e| e.sentence())
                    .unwrap_or_default(),
            ]
        }),
    );
    body.push_str("<h2>Topology</h2>\n");
    let _ = writeln!(
        body,
        "<p>Tree depth {}, mean depth {:.2}, {} leaves, max children {}, mean branching {:.2}. Contacts: {} host pairs, mean degree {:.2}, max degree {}, density {:.4}.</p>",
        t.tree_depth,
        t.mean_depth,
        t.leaves,
        t.max_children,
        t.mean_branching,
        t.contact_pairs,
        t.contact_mean_degree,
        t.contact_max_degree,
        t.contact_density
    );
    warnings(&mut body, load, &report.warnings);
    page("vtrail spread report", &body)
}

pub fn trace(report: &TraceReport, load: &LoadReport) -> String {
    let mut body = String::new();
    partial_notice(&mut body, load);
    for node in &report.flagged {
        let _ = writeln!(
            body,
            "<p>Flagged: <b>{}</b> on host {} <code>{}</code> {}</p>",
            xml(&node.label),
            xml(&node.host),
            xml(&node.id),
            node.sha256
                .as_deref()
                .map(|h| format!("sha256 <code>{h}</code>"))
                .unwrap_or_default()
        );
    }
    body.push_str("<h2>Where it came from</h2>\n<ul>");
    for entry in &report.backward.entry_points {
        match &entry.transfer {
            Some(t) => {
                let _ = write!(body, "<li>{}</li>", xml(&t.sentence()));
            }
            None => {
                let roots: Vec<String> =
                    entry.local_roots.iter().map(|r| r.label.clone()).collect();
                let _ = write!(
                    body,
                    "<li>local origin; earliest causes: {}</li>",
                    xml(&roots.join(", "))
                );
            }
        }
    }
    body.push_str("</ul>\n");
    table(
        &mut body,
        &["host", "event"],
        report
            .backward
            .chain
            .iter()
            .map(|e| vec![e.host.clone(), e.sentence()]),
    );
    body.push_str("<h2>Where it went</h2>\n");
    legend(&mut body, &["flagged", "infected", "reached"]);
    let _ = writeln!(
        body,
        "<div class=\"svgbox\">{}</div>",
        tree_svg(&report.tree())
    );
    let f = &report.forward;
    let _ = writeln!(
        body,
        "<p>{} processes started, {} files written, {} activation points touched, {} transfers out, {} hosts reached.</p>",
        f.processes_started.len(),
        f.files_written.len(),
        f.activation_points.len(),
        f.sent_to.len(),
        f.hosts_reached.len()
    );
    body.push_str("<h2>Activation points</h2>\n");
    table(
        &mut body,
        &["host", "event"],
        f.activation_points
            .iter()
            .map(|e| vec![e.host.clone(), e.sentence()]),
    );
    body.push_str("<h2>Behaviours timeline</h2>\n");
    table(
        &mut body,
        &["host", "event"],
        report
            .behaviours
            .iter()
            .take(2000)
            .map(|e| vec![e.host.clone(), e.sentence()]),
    );
    warnings(&mut body, load, &report.warnings);
    page("vtrail trace report", &body)
}

pub fn rules(report: &RulesReport, load: &LoadReport) -> String {
    let mut body = String::new();
    partial_notice(&mut body, load);
    let _ = writeln!(body, "<p>Rules for {}.</p>", xml(&report.question));
    body.push_str("<h2>Hosts to block</h2>\n");
    table(
        &mut body,
        &["vtrail-sensor block", "why"],
        report
            .block
            .iter()
            .map(|b| vec![b.target.clone(), b.reason.clone()]),
    );
    body.push_str("<h2>Infected loaded hosts (to clean, not to block)</h2>\n");
    table(
        &mut body,
        &["host", "hostname", "why"],
        report
            .infected_hosts
            .iter()
            .map(|h| vec![h.host.clone(), h.hostname.clone(), h.reason.clone()]),
    );
    body.push_str("<h2>Paths to protect</h2>\n");
    table(
        &mut body,
        &["path", "activation point", "hosts"],
        report.protect.iter().map(|p| {
            vec![
                p.path.clone(),
                p.activation_point.clone(),
                p.hosts.join(", "),
            ]
        }),
    );
    body.push_str("<h2>YARA rule</h2>\n");
    let _ = writeln!(
        body,
        "<pre>{}</pre>",
        xml(
            report
                .yara
                .as_deref()
                .unwrap_or("(none: no tainted file has a recorded content hash)")
        )
    );
    table(
        &mut body,
        &["not covered: no content hash recorded", "host", "node"],
        report
            .executed_without_hash
            .iter()
            .map(|f| vec![f.path.clone(), f.host.clone(), f.id.clone()]),
    );
    warnings(&mut body, load, &report.warnings);
    page("vtrail rules", &body)
}
