//! Rocket.Chat's default avatar: an SVG square in a colour chosen from the name's length,
//! with the name's first letter or digit in white. Pure rules; the route is
//! `http::avatar`. Clients show it wherever a user has no uploaded picture (statusd keeps
//! none), at the `avatarUrl` a login answer hands out.

/// Rocket.Chat's six avatar colours (`getAvatarColor`).
const COLORS: [&str; 6] = [
    "#158D65", "#7F1B9F", "#B68D00", "#E26D0E", "#10529E", "#6C727A",
];

/// The size when the request names none, and the bounds of `?size=` (Rocket.Chat's).
pub const DEFAULT_SIZE: u32 = 200;
pub const MIN_SIZE: u32 = 16;
pub const MAX_SIZE: u32 = 1024;

/// The colour of `name`: picked by its length in UTF-16 units, as JavaScript's
/// `name.length` counts, so a name gets the colour Rocket.Chat gives it.
pub fn color(name: &str) -> &'static str {
    COLORS[name.encode_utf16().count() % COLORS.len()]
}

/// The first ASCII letter or digit of `name`, upper-cased; empty when it has none.
pub fn initial(name: &str) -> String {
    name.chars()
        .find(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase().to_string())
        .unwrap_or_default()
}

/// `?size=`: Rocket.Chat's `parseInt`, then clamped; absent, zero or not a number gives
/// the default.
pub fn size(param: Option<&str>) -> u32 {
    let text = param.unwrap_or("").trim_start();
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let digits = &text[..text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len())];
    if digits.is_empty() || digits.bytes().all(|b| b == b'0') {
        return DEFAULT_SIZE;
    }
    match digits.parse::<u32>() {
        _ if negative => MIN_SIZE,
        Ok(n) => n.clamp(MIN_SIZE, MAX_SIZE),
        // More digits than a u32 holds: far above the largest size.
        Err(_) => MAX_SIZE,
    }
}

/// The SVG for `name` at `size` pixels. Only `[A-Z0-9?]` of the name reaches the
/// document, so nothing a client sent can add markup to it.
pub fn svg(name: &str, size: u32) -> String {
    let (color, letters) = if name == "?" {
        ("#000", "?".to_string())
    } else {
        (color(name), initial(name))
    };
    // One letter: the view size over 1.6, as Rocket.Chat computes it.
    let font_size = f64::from(size) / 1.6;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"{color}\"/>\n\
         <text x=\"50%\" y=\"50%\" dy=\"0.36em\" text-anchor=\"middle\" pointer-events=\"none\" \
         fill=\"#ffffff\" font-family=\"'Helvetica', 'Arial', 'Lucida Grande', 'sans-serif'\" \
         font-size=\"{font_size}\">\n{letters}\n</text>\n</svg>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_follows_the_length_in_utf16_units() {
        assert_eq!(color("alice"), "#6C727A"); // 5
        assert_eq!(color("bob"), "#E26D0E"); // 3
        assert_eq!(color("rocket.cat"), "#10529E"); // 10
        assert_eq!(color("abcdef"), "#158D65"); // 6
                                                // One astral character is two UTF-16 units in JavaScript.
        assert_eq!(color("😀"), "#B68D00");
        assert_eq!(color("é"), "#7F1B9F");
    }

    #[test]
    fn initial_is_the_first_ascii_letter_or_digit() {
        assert_eq!(initial("alice"), "A");
        assert_eq!(initial("_9lives"), "9");
        assert_eq!(initial(".bob"), "B");
        assert_eq!(initial("éva"), "V");
        assert_eq!(initial("<script>"), "S");
        assert_eq!(initial("__"), "");
    }

    #[test]
    fn size_parses_like_parse_int_and_is_clamped() {
        assert_eq!(size(None), 200);
        assert_eq!(size(Some("")), 200);
        assert_eq!(size(Some("abc")), 200);
        assert_eq!(size(Some("0")), 200);
        assert_eq!(size(Some("64")), 64);
        assert_eq!(size(Some("64px")), 64);
        assert_eq!(size(Some("1")), 16);
        assert_eq!(size(Some("99999999999999999999999")), 1024);
        assert_eq!(size(Some("-5")), 16);
        assert_eq!(size(Some("+64")), 64);
        assert_eq!(size(Some("5000")), 1024);
    }

    #[test]
    fn svg_has_the_colour_letter_and_size() {
        let s = svg("alice", 200);
        assert!(s.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 200 200\">"));
        assert!(s.contains("fill=\"#6C727A\""), "{s}");
        assert!(s.contains("font-size=\"125\""), "{s}");
        assert!(s.contains(">\nA\n</text>"), "{s}");
        let q = svg("?", 32);
        assert!(
            q.contains("fill=\"#000\"") && q.contains(">\n?\n</text>"),
            "{q}"
        );
        let odd = svg("<b>&\"", 50);
        assert!(!odd.contains("<b>") && !odd.contains('&'), "{odd}");
    }
}
