//! Colours shared by the drawings (DOT fill colours, the HTML tree, legend and chart), so
//! a role looks the same in every output.

/// Fill colour for a tree role (`TreeHost::role`) or a node kind (`GraphPicture` kinds).
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
