//! Text that people see: names, nicknames, bios and status texts. One rule for all of
//! them, so a look-alike cannot be built by one path that another path refuses:
//! characters that reorder or hide what follows them (bidi overrides and isolates,
//! zero-width characters) are taken out, and the length is counted in characters.

/// Bidi controls (embeddings, overrides, isolates, marks) and zero-width characters.
/// U+202E (RIGHT-TO-LEFT OVERRIDE) makes `txt.exe` render as `exe.txt`; zero-width
/// joiners and spaces make two different names render the same.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'            // ARABIC LETTER MARK
        | '\u{180E}'          // MONGOLIAN VOWEL SEPARATOR
        | '\u{200B}'..='\u{200F}' // zero-width space, non-joiner, joiner; LRM, RLM
        | '\u{202A}'..='\u{202E}' // LRE, RLE, PDF, LRO, RLO
        | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
        | '\u{2066}'..='\u{2069}' // LRI, RLI, FSI, PDI
        | '\u{FEFF}'          // zero-width no-break space (BOM)
    )
}

/// `text` without the invisible characters (`is_invisible`).
pub fn strip_invisible(text: &str) -> String {
    if text.chars().any(is_invisible) {
        text.chars().filter(|c| !is_invisible(*c)).collect()
    } else {
        text.to_string()
    }
}

/// A name as it is kept: invisible characters out, then trimmed.
pub fn clean_name(text: &str) -> String {
    strip_invisible(text).trim().to_string()
}

/// The length people count: characters, not bytes.
pub fn chars(text: &str) -> usize {
    text.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_overrides_and_zero_width_characters_are_taken_out() {
        assert_eq!(strip_invisible("ad\u{200B}min"), "admin");
        assert_eq!(strip_invisible("\u{202E}txt.exe"), "txt.exe");
        assert_eq!(strip_invisible("a\u{2066}b\u{2069}c\u{FEFF}"), "abc");
        assert_eq!(strip_invisible("Zoë ✓ 日本"), "Zoë ✓ 日本");
        assert_eq!(clean_name(" \u{200D} Ann \u{200F}"), "Ann");
        assert_eq!(chars("日本"), 2);
    }
}
