//! `--graphml`: for yEd, Gephi, networkx. Keys: label, kind, host on nodes; label, kind on edges.

use super::GraphPicture;
use super::escape::xml;

pub fn render(picture: &GraphPicture) -> String {
    let mut out = String::from(concat!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
        "<graphml xmlns=\"http://graphml.graphdrawing.org/xmlns\">\n",
        "  <key id=\"label\" for=\"all\" attr.name=\"label\" attr.type=\"string\"/>\n",
        "  <key id=\"kind\" for=\"all\" attr.name=\"kind\" attr.type=\"string\"/>\n",
        "  <key id=\"host\" for=\"node\" attr.name=\"host\" attr.type=\"string\"/>\n",
        "  <graph id=\"vtrail\" edgedefault=\"directed\">\n"
    ));
    for (id, (label, kind, host)) in &picture.nodes {
        out.push_str(&format!(
            "    <node id=\"{}\"><data key=\"label\">{}</data><data key=\"kind\">{}</data><data key=\"host\">{}</data></node>\n",
            xml(id), xml(label), xml(kind), xml(host)
        ));
    }
    for (i, (src, dst, label, kind)) in picture.edges.iter().enumerate() {
        out.push_str(&format!(
            "    <edge id=\"e{i}\" source=\"{}\" target=\"{}\"><data key=\"label\">{}</data><data key=\"kind\">{}</data></edge>\n",
            xml(src), xml(dst), xml(label), xml(kind)
        ));
    }
    out.push_str("  </graph>\n</graphml>\n");
    out
}
