//! Plain-text tables for what the lab and the kernel matrix print: every column but the
//! last padded to its widest cell, two spaces between, no trailing blanks.

/// `rows` (the header first) as aligned lines, each ending in a newline.
pub fn aligned(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns).map(|i| rows.iter().filter_map(|r| r.get(i)).map(|c| c.chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < row.len() {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up_and_the_last_is_not_padded() {
        let rows = vec![vec!["a".to_string(), "bb".into(), "c".into()], vec!["aaa".into(), "b".into(), "a long last cell".into()]];
        assert_eq!(super::aligned(&rows), "a    bb  c\naaa  b   a long last cell\n");
    }
}
