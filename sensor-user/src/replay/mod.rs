//! Offline replay of captures through the same parsers the TC program uses (issue 3).
